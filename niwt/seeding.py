"""Seeds: one call that seeds everything, and an independent stream for every random draw of a run.

A run has one seed. Every stage that draws random numbers (the data split, pre-training, each
seen training, the maps, the transfer pool, the transfers, the baselines) takes its own seed from
:func:`stage_seed`, a child of ``numpy.random.SeedSequence(seed)`` keyed by the stage's name, so no
two draws of one run, nor of two runs with different seeds, share a random stream (seed ``s``'s
seen training and seed ``s + 1``'s pre-training are unrelated, which ``seed + 1`` offsets were not).
Nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["seed_everything", "stage_seed", "stage_rng", "stage_generator", "seeded"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def _key(part: str | int) -> int:
    return int(part) if isinstance(part, int) else zlib.crc32(str(part).encode("utf-8"))


def stage_seed(seed: int, *stage: str | int) -> int:
    """The seed of one random draw of a run: ``SeedSequence(seed)`` spawned at the key of
    ``stage`` (names such as ``("train_final", "batches")``), as a non-negative 63-bit int that
    torch and NumPy both accept. Different stages, or different seeds, give unrelated streams."""
    if not stage:
        raise ValueError("`stage` must name the draw, e.g. stage_seed(seed, 'pretrain')")
    sequence = np.random.SeedSequence(int(seed), spawn_key=tuple(_key(p) for p in stage))
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def stage_rng(seed: int, *stage: str | int) -> np.random.Generator:
    """A NumPy generator on :func:`stage_seed`'s stream."""
    return np.random.default_rng(stage_seed(seed, *stage))


def stage_generator(seed: int, *stage: str | int) -> torch.Generator:
    """A torch CPU generator on :func:`stage_seed`'s stream."""
    return torch.Generator().manual_seed(stage_seed(seed, *stage))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generator seeded by ``seed``, then restore its state.

    For what draws from the global generator and takes no ``generator`` argument (module
    initialisation, dropout).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
