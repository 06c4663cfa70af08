"""What a recipe run did, read back from its materializations: per-stage totals, per-OP rows and
seconds summed over partitions, the export (what ``dj-process`` prints and writes to its report)."""

from __future__ import annotations

import dagster as dg

from .bundle import RecipeBundle


def first_failure(result: dg.ExecuteInProcessResult) -> str:
    """The error message of the first failed step of a run ("" when none says)."""
    return next((e.step_failure_data.error.message.strip() for e in result.all_events
                 if e.is_step_failure and e.step_failure_data.error), "")


def run_summary(bundle: RecipeBundle, result: dg.ExecuteInProcessResult) -> dict:
    """Per-stage totals and the export of an asset run, from its materializations (what
    ``dj-process`` prints): rows, per-OP rows and seconds summed over partitions, bad rows."""
    stages: dict[str, dict] = {}
    export: dict = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        name = mat.asset_key.path[-1]
        meta = mat.metadata
        if name == "export":
            export = {k: meta[k].value for k in ("rows", "rows_in", "keep_ratio", "outputs", "stats_file") if k in meta}
            continue
        st = stages.setdefault(name, {"name": name, "partitions": [], "rows_in": 0, "rows_out": 0, "bad_rows": 0,
                                      "seconds": 0.0, "ops": [], "bad_rows_files": []})
        st["partitions"].append({"partition": mat.partition, "rows_in": meta["rows_in"].value,
                                 "rows_out": meta["rows_out"].value})
        st["rows_in"] += meta["rows_in"].value
        st["rows_out"] += meta["rows_out"].value
        if "bad_rows_file" in meta and meta["bad_rows_file"].value not in st["bad_rows_files"]:
            st["bad_rows_files"].append(meta["bad_rows_file"].value)
        if "dedup" in meta:  # a global stage: its decision over every partition
            st["dedup"] = meta["dedup"].value
        if "ops_all_partitions_read" in meta:  # a global stage: one engine run for the whole step
            st["ops"] = [_op_row(r) for r in meta["ops_all_partitions_read"].records]
            st["bad_rows"], st["seconds"] = meta["bad_rows_step"].value, meta["seconds"].value
            continue
        st["bad_rows"] += meta["bad_rows"].value
        st["seconds"] = round(st["seconds"] + meta["seconds"].value, 3)
        rows = [_op_row(r) for r in meta["ops"].records] if "ops" in meta else []
        st["ops"] = rows if not st["ops"] else [
            {**a, **{k: round(a[k] + b[k], 3) for k in ("rows_in", "rows_out", "changed", "errors", "cpu_seconds")}}
            for a, b in zip(st["ops"], rows)]
    failed_steps = [e.step_key for e in result.all_events if e.is_step_failure]
    failed_checks = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in result.get_asset_check_evaluations()
                     if not c.passed]
    order = [s.name for s in bundle.stages]
    trace_dir = str(bundle.recipe.resolved_work_dir / "trace") if bundle.recipe.open_tracer else None
    return {"run_id": result.run_id, "success": result.success, "failed_steps": failed_steps,
            "failed_checks": failed_checks, "stages": sorted(stages.values(), key=lambda s: order.index(s["name"])),
            "export": export, "trace_dir": trace_dir}


def _op_row(record: dg.TableRecord) -> dict:
    d = record.data
    return {"name": d["op"], "kind": d["kind"], "rows_in": d["rows_in"], "rows_out": d["rows_out"],
            "changed": d["changed"], "errors": d["errors"], "cpu_seconds": d["cpu_seconds"]}

