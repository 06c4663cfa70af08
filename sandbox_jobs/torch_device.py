"""Where the sandbox's models run: the torch device and torch's CPU threads (torch is imported on
first use)."""

from __future__ import annotations


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
