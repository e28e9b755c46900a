"""The configs of the commands: the demo, the comparison world, and a tiny variant for smoke runs."""

from __future__ import annotations

from dataclasses import replace

from niwt.config import RunConfig
from niwt.data.shapes import ShapesConfig
from niwt.models import model_settings

__all__ = ["demo_config", "COMPARISON_WORLD", "comparison_config", "quick_config"]


def demo_config(seed: int = 0) -> RunConfig:
    """The defaults of ``niwt demo``."""
    return replace(RunConfig(), seed=seed)


COMPARISON_WORLD = {"n_source_images": 180, "n_trainval_images": 120, "n_test_seen_images": 60,
                    "n_test_unseen_images": 120}
"""The comparison world's image counts per class (the demo world's classes; its counts are 60, 40, 15, 30)."""


def comparison_config(seed: int = 0) -> RunConfig:
    """The defaults of ``niwt compare``, ``reproduce`` and ``ablate``: the comparison world.

    The demo's world is small so that it runs in about two minutes, and a single seed's numbers move
    by several points from test-set sampling alone (15 test images per seen class). The comparison
    world has the demo's classes with three times the training images, so that no method is held
    back by data starvation, and four times the test images, so that the sampling noise of S and U
    (about 0.01 and 0.015 per seed) is well below the differences being claimed; each epoch sees
    three times the images, so fewer epochs are run.
    """
    base = RunConfig()
    return replace(base, seed=seed, data=replace(base.data, **COMPARISON_WORLD),
                   train=replace(base.train, pretrain_epochs=6, epochs=8))


def quick_config(config: RunConfig) -> RunConfig:
    """A tiny variant of ``config`` for smoke runs and tests (seconds, not minutes): a tiny shapes
    world, or the config's own dataset (its size is the files'), with tiny models and short training."""
    data = config.data
    if isinstance(data, ShapesConfig):
        data = replace(data, n_source=4, n_seen=6, n_unseen=3, n_val=2, n_source_images=8, n_trainval_images=8,
                       n_test_seen_images=4, n_test_unseen_images=4)
    model = replace(config.model, width=4, hidden=16 if "hidden" in model_settings(config.model.arch) else None)
    return replace(config, data=data, model=model,
                   train=replace(config.train, pretrain_epochs=1, epochs=1),
                   mapping=replace(config.mapping, epochs=3, n_holdout=1),
                   transfer=replace(config.transfer, lam_grid=(0.0, 1e-2), max_steps=5, batch_size=8),
                   compare=replace(config.compare, seeds=2, ale_epochs=2, dem_epochs=2))
