"""Seeds: the one call that seeds everything, and a block run on a seeded global generator.

Nothing here runs at import: the commands call :func:`seed_everything` once per seed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["seed_everything", "seeded"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generator seeded by ``seed``, then restore its state.

    For what draws from the global generator and takes no ``generator`` argument (module
    initialisation, dropout).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
