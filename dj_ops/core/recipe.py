"""Data-Juicer-style YAML recipes, loaded safely into typed, validated objects.

Everything is checked before any data is read: unknown keys, unknown OPs (an OP Data-Juicer has
but this project does not yet is named as such), and every OP parameter against the type
annotations of the OP's constructor.  YAML is parsed with ``yaml.safe_load``; a recipe can never
run code (``custom_operator_paths`` is refused).
"""

from __future__ import annotations

import difflib
import inspect
import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .registry import data_juicer_op_names, load_all_ops, op_class


#: Parquet codecs the writers take (pyarrow's names; "lz4" writes Parquet's LZ4_RAW)
ParquetCodec = Literal["snappy", "lz4", "zstd", "gzip", "none"]


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the offending key and the valid choices."""


def _suggest(name: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class OpSpec(BaseModel):
    """One entry of ``process``: an OP name and its validated parameters."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def build(self, **global_defaults: Any):
        cls = op_class(self.name)
        accepted = op_parameters(cls)
        kwargs = {k: v for k, v in global_defaults.items() if k in accepted and k not in self.params}
        kwargs.update(self.params)
        return cls(**kwargs)


class StageSpec(BaseModel):
    """One named stage of a recipe: ``ops`` consecutive entries of ``process``.

    ``ops`` is either how many entries the stage holds or their OP names in order (checked
    against ``process``).  Under Dagster every stage is one partitioned asset named ``name``;
    its keep ratio (rows out / rows in, per partition) is checked against the bounds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    ops: int | list[str]
    min_keep_ratio: float = 0.0
    max_keep_ratio: float = 1.0

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not v.isidentifier() or not v.isascii():
            raise ValueError("must be a Python-style identifier (letters, digits, underscores)")
        return v

    @field_validator("ops")
    @classmethod
    def _some_ops(cls, v: int | list[str]) -> int | list[str]:
        if (v if isinstance(v, int) else len(v)) < 1:
            raise ValueError("a stage holds at least one OP")
        return v


class Recipe(BaseModel):
    """The recipe keys this project understands (Data-Juicer's names and defaults).

    The keys under "orchestration" are this project's own (Data-Juicer has none of them); the
    local executor ignores them.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # project
    project_name: str = "hello_world"
    executor_type: Literal["default", "local", "ray"] = "default"
    work_dir: str | None = None
    debug: bool = False
    # input
    dataset_path: str = ""
    suffixes: list[str] = Field(default_factory=list)
    # output
    export_path: str = "./outputs/hello_world/hello_world.jsonl"
    export_type: Literal["jsonl", "json", "parquet"] | None = None
    export_shard_size: int = 0
    export_in_parallel: bool = False
    keep_stats_in_res_ds: bool = False
    keep_hashes_in_res_ds: bool = False
    #: codec of Parquet exports (this project's key; Data-Juicer writes snappy, which every reader takes)
    export_compression: ParquetCodec = "snappy"
    # execution
    np: int = 4
    batch_size: int = 1000
    #: a JSON-lines record longer than this (bytes) is set aside as bad input, never loaded whole
    max_record_bytes: int = 64 << 20
    skip_op_error: bool = True
    #: record every finished chunk so that a re-run after a crash resumes (dj_ops.engine.checkpoint)
    use_checkpoint: bool = False
    #: where chunks are recorded (default: <work_dir>/.checkpoint)
    checkpoint_dir: str | None = None
    op_fusion: bool = False
    #: reproduce Data-Juicer 1.6.1's lossy JSON round trip of stats values before filters decide
    #: (this project's own key; only for row-exact comparisons with Data-Juicer)
    data_juicer_stats_compat: bool = False
    fusion_strategy: Literal["greedy", "probe"] = "probe"
    # accepted for compatibility with Data-Juicer recipes; streaming execution has no HF cache
    use_cache: bool = True
    ds_cache_dir: str | None = None
    cache_compress: Literal["gzip", "zstd", "lz4"] | None = None
    temp_dir: str | None = None
    open_monitor: bool = True
    turbo: bool = False
    adaptive_batch_size: bool = False
    # data keys
    text_keys: str | list[str] = "text"
    image_key: str = "images"
    image_bytes_key: str = "image_bytes"
    audio_key: str = "audios"
    video_key: str = "videos"
    image_special_token: str = "<__dj__image>"
    audio_special_token: str = "<__dj__audio>"
    video_special_token: str = "<__dj__video>"
    eoc_special_token: str = "<|__dj__eoc|>"
    # tracing
    open_tracer: bool = False
    op_list_to_trace: list[str] = Field(default_factory=list)
    trace_num: int = 10
    open_insight_mining: bool = False
    op_list_to_mine: list[str] = Field(default_factory=list)
    # analysis
    percentiles: list[float] = Field(default_factory=list)
    export_original_dataset: bool = False
    save_stats_in_one_file: bool = False
    auto: bool = False
    auto_num: int = 1000
    # ray / sandbox
    ray_address: str = "auto"
    hpo_config: str | None = None
    data_probe_algo: str = "uniform"
    data_probe_ratio: float = 1.0
    # orchestration (the Dagster layer, dj_assets)
    #: named stages, each one partitioned asset; default: split ``process`` at global OPs (dedup)
    stages: list[StageSpec] | None = None
    #: cron expression: a schedule re-runs the whole recipe (every partition)
    schedule: str | None = None
    #: folder watched by the recipe's inbox sensor (default <project>/inbox/<name>, sensor off): each new
    #: file becomes a partition and a run; files there are part of the dataset
    inbox_path: str | None = None
    #: codec of the stages' partition files, which the next stage and the export read back: lz4 writes
    #: and reads faster than snappy (bench/RESULTS.md; readers need Parquet's LZ4_RAW: pyarrow >= 8,
    #: Spark >= 3.3, DuckDB, polars); snappy, zstd, gzip or none also work
    stage_compression: ParquetCodec = "lz4"
    #: input files with more rows than this are split into partitions of this many rows (0: never)
    partition_rows: int = 100_000
    #: bounds of the overall keep ratio (exported rows / input rows), an asset check on the export
    min_keep_ratio: float = 0.0
    max_keep_ratio: float = 1.0
    # the processing chain
    process: list[OpSpec] = Field(default_factory=list)

    @field_validator("np", "batch_size", "trace_num", "auto_num")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("export_shard_size")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0 (bytes per shard; 0 = one file)")
        return v

    @field_validator("partition_rows")
    @classmethod
    def _rows_non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0 (rows per partition; 0 = one partition per file)")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        # the full syntax is checked by Dagster when the schedule is built; this catches typos early
        if v is not None and not v.startswith("@") and len(v.split()) != 5:
            raise ValueError("must be a 5-field cron expression such as '0 3 * * *' (or @daily, @hourly ...)")
        return v

    @property
    def text_key(self) -> str:
        keys = [self.text_keys] if isinstance(self.text_keys, str) else self.text_keys
        return keys[0] if keys else "text"

    @property
    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.export_path).resolve().parent

    @property
    def resolved_export_type(self) -> str:
        if self.export_type:
            return self.export_type
        name = Path(self.export_path).name.lower()
        for ext in ("parquet", "jsonl", "json"):
            if name.endswith("." + ext) or name.endswith(f".{ext}.gz"):
                return ext
        return "jsonl"

    def op_defaults(self) -> dict[str, Any]:
        """Global keys injected into every OP that accepts them (as Data-Juicer does)."""
        return {
            "text_key": self.text_key,
            "image_key": self.image_key,
            "image_bytes_key": self.image_bytes_key,
            "audio_key": self.audio_key,
            "video_key": self.video_key,
            "skip_op_error": self.skip_op_error,
            "turbo": self.turbo,
            "batch_size": self.batch_size,
            "work_dir": str(self.resolved_work_dir),
            "image_special_token": self.image_special_token,
            "audio_special_token": self.audio_special_token,
            "video_special_token": self.video_special_token,
            "eoc_special_token": self.eoc_special_token,
        }

    def build_ops(self) -> list:
        defaults = self.op_defaults()
        return [spec.build(**defaults) for spec in self.process]

    def to_yaml_dict(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"process"}, exclude_defaults=True)
        data["process"] = [{s.name: dict(s.params) or None} for s in self.process]
        return data


# ---------------------------------------------------------------------------------------------
# OP parameter validation


def op_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters accepted by an OP class: its own plus those of its base classes."""
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        hints = typing.get_type_hints(init)
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            params[p.name] = p.replace(annotation=hints.get(p.name, Any))
    return params


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(annotation: Any) -> TypeAdapter:
    key = repr(annotation)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(annotation)
    return _ADAPTERS[key]


def validate_op(name: str, params: Any, where: str) -> OpSpec:
    cls = op_class(name)
    if cls is None:
        ops = load_all_ops()
        if name in data_juicer_op_names():
            raise RecipeError(
                f"{where}: OP {name!r} is a Data-Juicer OP that this project does not implement yet. "
                f"Implemented OPs: {', '.join(sorted(ops))}"
            )
        raise RecipeError(f"{where}: unknown OP {name!r}.{_suggest(name, ops)} Valid OPs: {', '.join(sorted(ops))}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RecipeError(f"{where}.{name}: parameters must be a mapping, got {type(params).__name__}")
    accepted = op_parameters(cls)
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if key not in accepted:
            raise RecipeError(
                f"{where}.{name}: unknown parameter {key!r}.{_suggest(key, accepted)} "
                f"Valid parameters: {', '.join(sorted(accepted))}"
            )
        annotation = accepted[key].annotation
        try:
            clean[key] = _adapter(annotation).validate_python(value) if annotation is not Any else value
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise RecipeError(
                f"{where}.{name}.{key}: {msg} (got {value!r}, expected {_type_name(annotation)})"
            ) from None
    return OpSpec(name=name, params=clean)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def parse_process(process: Any) -> list[OpSpec]:
    if process is None:
        return []
    if not isinstance(process, list):
        raise RecipeError(f"process: must be a list of {{op_name: {{params}}}} entries, got {type(process).__name__}")
    specs = []
    for i, entry in enumerate(process):
        where = f"process[{i}]"
        if isinstance(entry, str):
            entry = {entry: None}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecipeError(f"{where}: each entry must be a single {{op_name: {{params}}}} mapping, got {entry!r}")
        (name, params), = entry.items()
        specs.append(validate_op(str(name), params, where))
    return specs


# ---------------------------------------------------------------------------------------------
# Loading


def recipe_from_dict(data: dict[str, Any], source: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping of keys, got {type(data).__name__}")
    data = dict(data)
    if "custom_operator_paths" in data:
        raise RecipeError(
            f"{source}: key 'custom_operator_paths' is refused: recipes never load or run code. "
            "Register custom OPs in a Python package instead."
        )
    known = Recipe.model_fields
    for key in data:
        if key not in known:
            raise RecipeError(f"{source}: unknown recipe key {key!r}.{_suggest(key, known)} Valid keys: {', '.join(sorted(known))}")
    specs = parse_process(data.pop("process", None))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise RecipeError(f"{source}: key {key!r}: {err['msg']} (got {err.get('input')!r})") from None
    recipe.process = specs
    return recipe


def load_recipe(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a YAML (or JSON) recipe file; ``overrides`` are applied on top (command-line keys).

    Override keys may be recipe keys (``np``) or OP parameters (``text_length_filter.min_len``),
    as in Data-Juicer's command line.
    """
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{p}: invalid YAML: {exc}") from None
    if isinstance(data, dict):
        data = apply_overrides(data, overrides or {}, source=str(p))
    return recipe_from_dict(data, source=str(p))


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], source: str = "recipe") -> dict[str, Any]:
    data = dict(data)
    process = list(data.get("process") or [])
    for key, value in overrides.items():
        if "." in key and key.split(".", 1)[0] not in Recipe.model_fields:
            op_name, param = key.split(".", 1)
            hits = [i for i, e in enumerate(process) if isinstance(e, dict) and op_name in e]
            if not hits:
                raise RecipeError(f"{source}: override {key!r}: OP {op_name!r} is not in this recipe's process list")
            for i in hits:
                params = dict(process[i][op_name] or {})
                params[param] = value
                process[i] = {op_name: params}
        else:
            data[key] = value
    if process:
        data["process"] = process
    return data
