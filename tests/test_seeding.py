"""Stage seeds: every random draw of a run has its own stream, unrelated across stages and seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from niwt.seeding import seeded, stage_generator, stage_rng, stage_seed

# the draws of one run (niwt.pipeline, niwt.data.formats.splits)
STAGES = [("pretrain", "init"), ("pretrain", "batches"), ("train_val", "init"), ("train_val", "batches"),
          ("train_val", "head batches"), ("train_final", "init"), ("train_final", "batches"),
          ("train_final", "head batches"), ("validation split",), ("validation classes",), ("test_seen images",),
          ("mapping", "validation"), ("mapping", "final"), ("transfer", "validation"), ("transfer", "final"),
          ("pool", "validation"), ("pool", "final"), ("noise pool", "validation"), ("noise pool", "final"),
          ("inverse map",), ("baseline", "ale", "validation"), ("baseline", "ale", "final"),
          ("baseline", "dem", "validation"), ("baseline", "dem", "final")]


def test_no_two_draws_of_five_seeds_share_a_seed():
    seeds = [stage_seed(s, *stage) for s in range(5) for stage in STAGES]
    assert len(set(seeds)) == len(seeds)
    # the old offsets made seed 0's seen training draw seed 1's pre-training stream
    assert stage_seed(0, "train_final", "batches") != stage_seed(1, "pretrain", "batches")


def test_the_same_seed_and_stage_give_the_same_stream_and_others_do_not():
    a = stage_generator(3, "pretrain", "batches")
    b = stage_generator(3, "pretrain", "batches")
    c = stage_generator(3, "train_final", "batches")
    draws = [torch.randperm(50, generator=g) for g in (a, b, c)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert np.array_equal(stage_rng(3, "pool", "final").permutation(50), stage_rng(3, "pool", "final").permutation(50))


@given(seed=st.integers(0, 2**31 - 1), parts=st.lists(st.text(max_size=12), min_size=1, max_size=3))
def test_a_stage_seed_is_a_63_bit_seed_torch_and_numpy_take(seed, parts):
    value = stage_seed(seed, *parts)
    assert 0 <= value < 2**63
    torch.Generator().manual_seed(value)
    np.random.default_rng(value)


def test_streams_of_nearby_seeds_are_uncorrelated():
    draws = np.array([stage_rng(s, "train_final", "batches").standard_normal(2000) for s in range(8)])
    corr = np.corrcoef(draws)
    off = corr[~np.eye(8, dtype=bool)]
    assert np.abs(off).max() < 0.1  # 2000 normal draws: |r| of independent streams stays near 0.02


def test_seeded_restores_the_global_generator_and_a_stage_needs_a_name():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    with seeded(stage_seed(0, "pretrain", "init")):
        torch.rand(5)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ValueError, match="must name the draw"):
        stage_seed(0)
    assert len({stage_seed(0, *p) for p in itertools.permutations(("a", "b"))}) == 2
