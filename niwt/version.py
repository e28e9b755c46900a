"""The package's version (one place: the package root and the run manifests read it), and the
library versions recorded next to every run."""

from __future__ import annotations

import platform

__version__ = "0.1.0"

__all__ = ["__version__", "versions"]


def versions() -> dict[str, str]:
    """Library versions recorded next to every run."""
    import numpy
    import scipy
    import torch

    return {"niwt": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}
