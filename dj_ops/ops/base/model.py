"""The base of OPs that run a model: where the model comes from, where it runs, how much to feed.

A model OP names its model with :meth:`ModelOP.init_model` in its constructor (checked there, so
a missing local folder fails when the recipe is loaded, not in a worker), loads it in
:meth:`load_models` through :func:`dj_ops.models.runtime.load_model` (once per process), and is
placed by its ``accelerator`` (``cuda`` by default: a GPU when one is visible, else the CPU).  The
fusion planner probes it on one micro-batch and runs it on slices of a few micro-batches, so its
heavy intermediates (decoded media, tensors) stay bounded; see :mod:`.intermediates`.
"""

from __future__ import annotations

from dj_ops.models import runtime

from .op import OP


class ModelOP(OP):
    """An OP whose work is a model's forward passes (mix in before :class:`Filter` / :class:`Mapper`)."""

    default_accelerator = "cuda"

    def init_model(self, model_id: str, param: str, trust_remote_code: bool = False) -> None:
        """Remember the model; a local folder that does not exist, or (with ``HF_HUB_OFFLINE``) a
        hub model that is not on disk, fails now, naming the OP and the setting to change."""
        self.model_id = model_id
        self.model_param = param
        self.trust_remote_code = trust_remote_code
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE or runtime.looks_like_path(model_id):
            runtime.resolve_model(model_id, op_name=self.name, param=param, download=False)

    def model_path(self) -> str:
        """The local folder of the model (the hub only as a last resort)."""
        return runtime.resolve_model(self.model_id, op_name=self.name, param=self.model_param)

    def placement(self) -> runtime.Placement:
        return runtime.placement(self.accelerator)

    def load_models(self) -> list[runtime.LoadedModel]:
        raise NotImplementedError

    def slice_rows(self) -> int:
        """Rows per slice: a few micro-batches, so padding is rare and memory stays bounded."""
        return max(runtime.MIN_SLICE_ROWS, 4 * runtime.default_batch_size(self.placement()))

    def probe_rows(self) -> int:
        """Rows the fusion planner probes: one micro-batch (a model pass is costly), or a few rows."""
        return max(runtime.MIN_PROBE_ROWS, runtime.default_batch_size(self.placement()))
