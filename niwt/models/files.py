"""A backbone's weights as a safetensors file: written after a training stage, read back by a run."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from niwt.models.backbones import Backbone
from niwt.models.registry import create_model
from niwt.seeding import seeded

__all__ = ["save_weights", "load_model"]


def save_weights(model: Backbone, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Every tensor of ``model``'s state (on the CPU) into the safetensors file ``path``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_model(arch: str, n_out: int, path: Path, **settings: object) -> Backbone:
    """A backbone ``arch`` with ``n_out`` seen rows and the weights of the safetensors file
    ``path``, in eval mode; unseen rows take the file's number. Every weight comes from the file,
    so ``settings`` that choose starting weights are set to ``"none"``, and the global random
    generator is left as it was."""
    if "weights" in settings:
        settings = {**settings, "weights": "none"}
    with seeded(0):
        model = create_model(arch, n_out, **settings)
    model.load_state_dict(load_file(str(path)))
    return model.eval()
