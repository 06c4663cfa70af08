"""The sandbox's small models: a tokenizer and a tiny transformer, trained with torch.

- **Tokenizer**: byte-level BPE trained here with the ``tokenizers`` package (deterministic for a
  given text sample), or plain bytes.  A BPE tokenizer is trained once per (dataset, settings)
  and cached under ``<sandbox work_dir>/tokenizers/``: every trial of a sandbox that names the
  same ``tokenizer.train_dataset`` shares it, so per-token perplexities are comparable across
  trials.  Bits per byte are reported too (comparable whatever the tokenizer).
- **transformer_lm**: a causal pre-norm transformer (tied input/output embeddings) over the
  first ``max_seq_len`` tokens of each document, trained with next-token cross-entropy;
  evaluated by held-out perplexity and bits per byte.
- **transformer_classifier**: the same encoder without the causal mask, mean-pooled, with a
  linear head over the labels of ``label_key`` (IMDB: ``meta.label``); evaluated by accuracy.
- **clip_linear_probe** (image-text data): a linear classifier over the labels of ``label_key`` on
  the CLIP image embeddings of each row's image (:mod:`sandbox_jobs.clip_probe`); evaluated by
  accuracy.

Training is seeded (model init, batch order, dropout) and runs on the GPU when one is present
(``device: auto``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .clip_probe import ClipSettings, evaluate_probe, train_probe
from .data import read_rows, sample_rows
from .torch_device import pick_device, set_threads

# the engine forks worker processes later in the same process; Rust-side threads must not exist then
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ["<pad>", "<bos>", "<eos>"]


class TokenizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["bpe", "byte"] = "bpe"
    vocab_size: int = Field(default=4096, ge=300)
    #: texts the BPE is trained on (default: the training set); name the raw data to share it across trials
    train_dataset: str | None = None
    #: at most this many documents of it (the first ones)
    max_rows: int | None = 20000


class ArchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    d_model: int = Field(default=128, ge=8)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int = Field(default=512, ge=8)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    max_seq_len: int = Field(default=128, ge=4)


class TrainSettings(BaseModel):
    """``extra_configs`` of TrainModel."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["transformer_lm", "transformer_classifier", "clip_linear_probe"] = "transformer_lm"
    #: the data to train on (usually set by ``input`` from the ProcessData job)
    train_dataset: str | None = None
    text_key: str = "text"
    label_key: str = "meta.label"
    #: draw this many rows (seeded), e.g. as many as another job kept; None: all rows
    max_rows: int | None = Field(default=None, ge=1)
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    #: the CLIP model and image field of a clip_linear_probe
    clip: ClipSettings = Field(default_factory=ClipSettings)
    model: ArchSettings = Field(default_factory=ArchSettings)
    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.05, ge=0, le=1)
    grad_clip: float = Field(default=1.0, gt=0)
    seed: int = 42
    device: str = "auto"
    #: torch CPU threads (None: torch's default)
    threads: int | None = None
    #: where the model is written (default: the job's folder in the trial)
    work_dir: str | None = None


class EvalSettings(BaseModel):
    """``extra_configs`` of EvaluateModel."""

    model_config = ConfigDict(extra="forbid")
    #: perplexity for a language model, accuracy for a classifier (default: what the model is)
    type: Literal["perplexity", "accuracy"] | None = None
    #: the trained model (usually set by ``input`` from the TrainModel job)
    model_path: str | None = None
    eval_dataset: str | None = None
    text_key: str | None = None
    label_key: str | None = None
    max_rows: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=64, ge=1)
    device: str = "auto"
    threads: int | None = None


# ---------------------------------------------------------------------------------------------
# tokenizers


class TextTokenizer:
    """Byte-level BPE (``tokenizers``) or raw bytes; ids 0-2 are <pad>, <bos>, <eos>."""

    def __init__(self, kind: str, bpe=None):
        self.kind = kind
        self.bpe = bpe
        if kind == "byte":
            self.vocab_size = 256 + len(SPECIALS)
            self.token_bytes = np.array([0] * len(SPECIALS) + [1] * 256, dtype=np.int64)
        else:
            self.vocab_size = bpe.get_vocab_size()
            # byte-level BPE: each character of a token string stands for one byte
            self.token_bytes = np.array(
                [0 if i < len(SPECIALS) else len(bpe.id_to_token(i) or "") for i in range(self.vocab_size)], dtype=np.int64)

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.kind == "byte":
            return [[b + len(SPECIALS) for b in t.encode("utf-8", "replace")] for t in texts]
        return [e.ids for e in self.bpe.encode_batch(texts)]

    def save(self, path: Path) -> None:
        if self.kind == "byte":
            path.write_text(json.dumps({"kind": "byte"}))
        else:
            self.bpe.save(str(path))

    @classmethod
    def load(cls, path: Path) -> "TextTokenizer":
        data = json.loads(path.read_text())
        if data.get("kind") == "byte":
            return cls("byte")
        from tokenizers import Tokenizer

        return cls("bpe", Tokenizer.from_file(str(path)))


def train_bpe(texts: list[str], vocab_size: int) -> TextTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    return TextTokenizer("bpe", bpe)


def tokenizer_for(settings: TokenizerSettings, train_dataset: str, text_key: str, cache_dir: Path,
                  log=print) -> tuple[TextTokenizer, Path]:
    """The tokenizer of ``settings``, trained (or read from ``cache_dir``) on its dataset."""
    if settings.type == "byte":
        tok = TextTokenizer("byte")
        path = cache_dir / "byte.json"
        cache_dir.mkdir(parents=True, exist_ok=True)
        tok.save(path)
        return tok, path
    source = settings.train_dataset or train_dataset
    files = sorted(Path(p) for p in source.split())
    ident = [settings.model_dump(exclude={"train_dataset"}), text_key,
             [(str(f.resolve()), f.stat().st_size, int(f.stat().st_mtime)) for f in files]]
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_dir / f"bpe-{settings.vocab_size}-{digest}.json"
    if path.is_file():
        return TextTokenizer.load(path), path
    texts = [r[text_key] for r in read_rows(source, [text_key], text_key)]
    if settings.max_rows is not None:
        texts = texts[: settings.max_rows]
    t0 = time.perf_counter()
    tok = train_bpe(texts, settings.vocab_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tok.save(tmp)
    tmp.replace(path)
    log(f"trained a byte-level BPE tokenizer ({tok.vocab_size} tokens) on {len(texts)} documents of {source} "
        f"in {time.perf_counter() - t0:.1f} s")
    return tok, path


# ---------------------------------------------------------------------------------------------
# the model


def _torch():
    import torch

    return torch


def build_model(vocab_size: int, arch: ArchSettings, causal: bool, n_classes: int | None = None):
    torch = _torch()
    nn = torch.nn

    class TinyTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.causal = causal
            self.embed = nn.Embedding(vocab_size, arch.d_model, padding_idx=PAD)
            self.pos = nn.Embedding(arch.max_seq_len, arch.d_model)
            layer = nn.TransformerEncoderLayer(arch.d_model, arch.n_heads, arch.d_ff, arch.dropout,
                                               batch_first=True, norm_first=True, activation="gelu")
            self.encoder = nn.TransformerEncoder(layer, arch.n_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(arch.d_model)
            self.head = nn.Linear(arch.d_model, n_classes) if n_classes else None
            # small embeddings (GPT-2's 0.02): with tied output weights, unit-variance rows would
            # start the language model at a loss far above log(vocab)
            nn.init.normal_(self.embed.weight, std=0.02)
            nn.init.normal_(self.pos.weight, std=0.02)
            with torch.no_grad():
                self.embed.weight[PAD].zero_()

        def forward(self, ids):
            n = ids.shape[1]
            h = self.embed(ids) + self.pos(torch.arange(n, device=ids.device))
            pad = ids == PAD
            if self.causal:
                # right padding: a causal mask alone keeps real tokens from seeing pads
                mask = nn.Transformer.generate_square_subsequent_mask(n, device=ids.device)
                h = self.norm(self.encoder(h, mask=mask, is_causal=True))
                return h @ self.embed.weight.T  # tied output embedding
            h = self.norm(self.encoder(h, src_key_padding_mask=pad))
            keep = (~pad).unsqueeze(-1).to(h.dtype)
            return self.head((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))

    return TinyTransformer()


def _sequences(tok: TextTokenizer, texts: list[str], max_len: int, lm: bool) -> list[list[int]]:
    """<bos> + tokens (+ <eos> when the document fits); for an LM one extra token for the shift."""
    limit = max_len + 1 if lm else max_len
    out = []
    for ids in tok.encode(texts):
        seq = [BOS, *ids, EOS]
        out.append(seq[:limit])
    return out


def _pad(batch: list[list[int]]):
    torch = _torch()
    width = max(len(s) for s in batch)
    arr = np.full((len(batch), width), PAD, dtype=np.int64)
    for i, s in enumerate(batch):
        arr[i, : len(s)] = s
    return torch.from_numpy(arr)


def train_model(settings: TrainSettings, out_dir: Path, tokenizer_cache: Path, log=print,
                embedding_cache: Path | None = None) -> dict[str, Any]:
    """Train on ``settings.train_dataset``; write ``model.pt``, ``model.json`` (and ``tokenizer.json``).
    ``embedding_cache``: where a clip_linear_probe keeps image embeddings (None: not cached)."""
    torch = _torch()
    if not settings.train_dataset:
        raise ValueError("TrainModel: extra_configs.train_dataset is not set (give it, or set it with `input`)")
    if settings.type == "clip_linear_probe":
        return train_probe(settings, out_dir, embedding_cache, log)
    lm = settings.type == "transformer_lm"
    fields = [settings.text_key] if lm else [settings.text_key, settings.label_key]
    rows = read_rows(settings.train_dataset, fields, settings.text_key)
    total_rows = len(rows)
    rows = sample_rows(rows, settings.max_rows, settings.seed)
    if not rows:
        raise ValueError(f"TrainModel: no rows with text in {settings.train_dataset}")
    tok, tok_path = tokenizer_for(settings.tokenizer, settings.train_dataset, settings.text_key, tokenizer_cache, log)
    texts = [r[settings.text_key] for r in rows]
    labels: list = []
    if not lm:
        labels = sorted({r[settings.label_key] for r in rows if r[settings.label_key] is not None}, key=str)
        if len(labels) < 2:
            raise ValueError(f"TrainModel: {settings.label_key!r} needs at least two distinct labels, got {labels}")
        index = {v: i for i, v in enumerate(labels)}
        keep = [i for i, r in enumerate(rows) if r[settings.label_key] in index]
        texts = [texts[i] for i in keep]
        y_all = np.array([index[rows[i][settings.label_key]] for i in keep], dtype=np.int64)
    seqs = _sequences(tok, texts, settings.model.max_seq_len, lm)

    set_threads(settings.threads)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = build_model(tok.vocab_size, settings.model, causal=lm, n_classes=None if lm else len(labels)).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    steps_per_epoch = math.ceil(len(seqs) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    warmup = max(1, int(settings.warmup_ratio * total_steps))

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10 %
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.perf_counter()
    model.train()
    losses: list[float] = []
    tokens = 0
    step = 0
    for epoch in range(settings.epochs):
        order = rng.permutation(len(seqs))
        for start in range(0, len(order), settings.batch_size):
            idx = order[start: start + settings.batch_size]
            ids = _pad([seqs[i] for i in idx]).to(device)
            if lm:
                logits = model(ids[:, :-1])
                target = ids[:, 1:]
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                         ignore_index=PAD)
                tokens += int((target != PAD).sum())
            else:
                logits = model(ids)
                loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y_all[idx]).to(device))
                tokens += int((ids != PAD).sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
        log(f"TrainModel: epoch {epoch + 1}/{settings.epochs}: mean loss {np.mean(losses[-steps_per_epoch:]):.4f}")
    seconds = time.perf_counter() - t0

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "model.pt")
    shutil.copyfile(tok_path, out_dir / "tokenizer.json")
    meta = {"type": settings.type, "arch": settings.model.model_dump(), "vocab_size": tok.vocab_size,
            "labels": labels, "text_key": settings.text_key, "label_key": settings.label_key,
            "tokenizer": tok.kind, "tokenizer_source": str(tok_path), "seed": settings.seed}
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1))
    tail = losses[-max(1, steps_per_epoch // 4):]
    return {
        "model_path": str(out_dir),
        "train_rows": len(seqs),
        "source_rows": total_rows,
        "train_tokens": tokens,
        "steps": step,
        "final_train_loss": float(np.mean(tail)),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "seconds": round(seconds, 3),
        "device": device,
    }


def evaluate_model(settings: EvalSettings, log=print, embedding_cache: Path | None = None) -> dict[str, Any]:
    """Held-out perplexity and bits per byte (language model) or accuracy (classifier, probe)."""
    torch = _torch()
    if not settings.model_path or not settings.eval_dataset:
        raise ValueError("EvaluateModel: extra_configs.model_path and eval_dataset must be set (directly or by `input`)")
    model_dir = Path(settings.model_path)
    meta = json.loads((model_dir / "model.json").read_text())
    lm = meta["type"] == "transformer_lm"
    kind = settings.type or ("perplexity" if lm else "accuracy")
    if (kind == "perplexity") != lm:
        raise ValueError(f"EvaluateModel: type {kind!r} does not fit a {meta['type']} model")
    set_threads(settings.threads)
    if meta["type"] == "clip_linear_probe":
        return evaluate_probe(settings, meta, embedding_cache, log)
    text_key = settings.text_key or meta["text_key"]
    label_key = settings.label_key or meta["label_key"]
    rows = read_rows(settings.eval_dataset, [text_key] if lm else [text_key, label_key], text_key)
    rows = rows[: settings.max_rows] if settings.max_rows else rows
    tok = TextTokenizer.load(model_dir / "tokenizer.json")
    arch = ArchSettings(**meta["arch"])
    labels = meta["labels"]
    if not lm:
        index = {v: i for i, v in enumerate(labels)}
        rows = [r for r in rows if r[label_key] in index]
    if not rows:
        raise ValueError(f"EvaluateModel: no usable rows in {settings.eval_dataset}")
    device = pick_device(settings.device)
    model = build_model(meta["vocab_size"], arch, causal=lm, n_classes=None if lm else len(labels))
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu"))
    model.to(device).eval()
    seqs = _sequences(tok, [r[text_key] for r in rows], arch.max_seq_len, lm)
    token_bytes = torch.from_numpy(tok.token_bytes)
    nll = 0.0
    n_tokens = 0
    n_bytes = 0
    correct = 0
    with torch.no_grad():
        for start in range(0, len(seqs), settings.batch_size):
            ids = _pad(seqs[start: start + settings.batch_size]).to(device)
            if lm:
                logits = model(ids[:, :-1])
                target = ids[:, 1:]
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                         ignore_index=PAD, reduction="sum")
                nll += float(loss)
                real = target != PAD
                n_tokens += int(real.sum())
                n_bytes += int(token_bytes[target.cpu()][real.cpu()].sum())
            else:
                y = torch.tensor([labels.index(r[label_key]) for r in rows[start: start + settings.batch_size]],
                                 device=device)
                logits = model(ids)
                nll += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(-1) == y).sum())
    if lm:
        loss = nll / max(n_tokens, 1)
        return {"perplexity": math.exp(loss), "eval_loss": loss, "bits_per_byte": nll / math.log(2) / max(n_bytes, 1),
                "eval_rows": len(seqs), "eval_tokens": n_tokens}
    return {"accuracy": correct / len(seqs), "eval_loss": nll / len(seqs), "eval_rows": len(seqs)}
