"""Validation inside the final network (``eval.validation = "held_out_rows"``): the held-out
network is the final one without the val classes' rows, nothing is trained for it, and a run
chooses on it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from niwt.config import apply_overrides, load_config, resolve_config
from niwt.data import ZSLData
from niwt.errors import ConfigError, DataError
from niwt.models import create_model
from niwt.pipeline.inputs import open_run
from niwt.pipeline.recipe import seed_context
from niwt.training.validation import held_out_rows
from tests._configs import SMALL_RUN


def test_held_out_rows_keeps_the_asked_rows_in_order_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = create_model("resnet", 5, width=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kept = held_out_rows(model, np.array([3, 0, 4]))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        full, part = model(x), kept(x)
    assert part.shape == (2, 3)
    torch.testing.assert_close(part, full[:, [3, 0, 4]], rtol=0, atol=0)
    assert kept.classifier.n_unseen == 0
    for k, v in model.state_dict().items():  # the final network is untouched
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("rows, word", [([], "at least one"), ([1, 1], "at most once"), ([0, 5], "seen rows")])
def test_held_out_rows_refuses_bad_rows(rows, word):
    model = create_model("resnet", 5, width=4)
    with pytest.raises(DataError, match=word):
        held_out_rows(model, np.array(rows, dtype=np.int64))


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_RUN)
    return load_config(path)


def test_an_unknown_validation_design_is_refused_with_the_choices(small_config):
    with pytest.raises(ConfigError, match="held_out_rows"):
        apply_overrides(small_config, ['eval.validation="rows"'])


def test_a_run_validated_on_held_out_rows_trains_only_the_final_network(small_config):
    config = resolve_config(apply_overrides(small_config,
                                            ['eval.validation="held_out_rows"', "eval.val_splits=2"]))
    inputs = open_run(config)
    ctx = seed_context(inputs, methods=("niwt",))
    data: ZSLData = ctx.data
    models = ctx.models
    assert "train_val" not in models.seconds and "train_val2" not in models.seconds  # nothing else trained
    assert set(models.keys) >= {"train_final", "train_val", "train_val2"}
    for setting, model in zip(ctx.validations, (models.validation, *models.more_validation)):
        rows = ctx.final.rows(setting.fit_classes)
        torch.testing.assert_close(model.classifier.weight, models.final.classifier.weight[rows], rtol=0, atol=0)
        assert model.classifier.n_seen == len(setting.fit_classes) < len(data.seen_classes)
        trunk = dict(model.named_parameters())
        for name, p in models.final.named_parameters():  # the same trunk
            if not name.startswith("classifier."):
                assert torch.equal(trunk[name], p), name
    # and the validation networks differ from the design that trains them
    trained = seed_context(open_run(resolve_config(replace(config, eval=replace(config.eval,
                                                                                  validation="networks")))),
                           methods=("niwt",))
    assert "train_val" in trained.models.seconds
    assert trained.models.keys["train_val"] != models.keys["train_val"]
