"""Pre-trained weights for the torchvision backbones: from a local file, or torchvision's weights API.

A file is read with safetensors, or with ``torch.load(..., weights_only=True)`` for a state dict saved
by ``torch.save`` (nothing is unpickled). Its keys and shapes are checked against the architecture
before anything is loaded; the final ImageNet classifier layer is not used (niwt puts its own
classifier there) and may be absent. There is never a silent random start: ``"none"`` asks for one.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.messages import first_names

__all__ = ["WEIGHTS_HELP", "read_state_dict", "torchvision_network"]

WEIGHTS_HELP = ('set model.weights to a file (safetensors, or a torchvision state dict saved with torch.save), '
                'to "imagenet" for torchvision\'s own weights (downloaded once into its cache), or to "none" for '
                'random weights')
_SHOWN = 5


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file (safetensors, or a plain state dict read with ``weights_only=True``).

    Raises:
        DataError: a missing or unreadable file, or one that is not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights file {str(path)!r} not found; {WEIGHTS_HELP}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():
            raise DataError(f"weights file {str(path)!r} holds a pickled Python object (a whole model saved with "
                            "torch.save(model, ...)?), which niwt does not unpickle: unpickling can run any code. "
                            "Save the weights alone and give that file: torch.save(model.state_dict(), "
                            "'weights.pt'), or safetensors.torch.save_file(model.state_dict(), "
                            "'weights.safetensors')") from err
        raise DataError(f"weights file {str(path)!r} is neither a safetensors file nor a PyTorch state dict "
                        "(torch.load(..., weights_only=True) cannot read it)") from err
    except (OSError, RuntimeError, ValueError, EOFError) as err:
        raise DataError(f"cannot read weights file {str(path)!r}: {str(err)[:300]}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DataError(f"weights file {str(path)!r} does not hold a state dict (names -> tensors)")
    return state


def _describe(items: list[str]) -> str:
    return first_names(items, _SHOWN, more=" and {} more")


def load_checked(net: nn.Module, state: dict[str, torch.Tensor], arch: str, source: str, *, skip: Callable[[str], bool],
                 naming: str) -> None:
    """Load ``state`` into ``net`` after checking every key and shape, except the keys ``skip``
    says are not loaded (the classifier, whose rows are the run's).

    Raises:
        DataError: naming the first missing, unexpected and misshapen keys, and that the weights
            must be ``arch``'s as ``naming`` names them.
    """
    expected = {k: v.shape for k, v in net.state_dict().items() if not skip(k)}
    given = {k: v for k, v in state.items() if not skip(k)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(f"{k} {tuple(given[k].shape)} (expected {tuple(expected[k])})" for k in set(expected) & set(given)
                   if tuple(given[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        parts = [f"missing {_describe(missing)}" if missing else "", f"unexpected {_describe(unexpected)}"
                 if unexpected else "", f"wrong shapes {_describe(wrong)}" if wrong else ""]
        raise DataError(f"weights {source} do not fit {arch}: " + "; ".join(p for p in parts if p)
                        + f". Give {arch} weights as {naming} names them")
    net.load_state_dict(given, strict=False)


def torchvision_network(builder: Callable[..., nn.Module], arch: str, weights: str | None, final: str) -> nn.Module:
    """``builder`` (e.g. ``torchvision.models.vgg16``) with the asked weights.

    Args:
        builder: the torchvision model function.
        arch: its name, for messages.
        weights: a file path, ``"imagenet"`` or ``"none"``.
        final: name prefix of the ImageNet classifier layer, which is not loaded (``"classifier.6."``).

    Raises:
        ConfigError: ``weights`` unset, or ``"imagenet"`` weights that cannot be had here.
        DataError: a file that cannot be read or whose keys or shapes do not fit.
    """
    if weights is None or weights == "":
        raise ConfigError(f"model {arch!r} needs pre-trained weights and none were given: {WEIGHTS_HELP}")
    if weights == "none":
        return builder(weights=None)
    if weights == "imagenet":
        try:
            return builder(weights="DEFAULT")
        except Exception as err:  # noqa: BLE001 - no network, no cache: say how to provide them
            raise ConfigError(f"torchvision's ImageNet weights for {arch!r} cannot be had here ({type(err).__name__}:"
                              f" {str(err)[:200]}); download them where a network is available and {WEIGHTS_HELP}"
                              ) from err
    net = builder(weights=None)
    load_checked(net, read_state_dict(weights), arch, repr(weights), skip=lambda k: k.startswith(final),
                 naming="torchvision")
    return net
