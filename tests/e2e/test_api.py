"""The front door: the README's Python example runs as written, and the API's helpers do what they say."""

from __future__ import annotations

import re

import numpy as np
import pytest

from niwt import ShapesConfig, build_settings, make_shapes
from niwt.errors import DataError
from tests._paths import ROOT

README = ROOT / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_example_runs_as_written_and_prints_s_u_h(capsys):
    block = _python_blocks()[0]
    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    match = re.fullmatch(r"S=(\d\.\d{3}) U=(\d\.\d{3}) H=(\d\.\d{3})\n", out)
    assert match, out
    s, u, h = (float(v) for v in match.groups())
    assert h == pytest.approx(0 if s + u == 0 else 2 * s * u / (s + u), abs=2e-3)
    assert u > 0.3  # 6 unseen classes: chance is 1/6 on the unseen classes alone, lower over all 36


def test_the_api_page_example_chooses_lambda_on_validation_and_prints_h(capsys):
    (block,) = re.findall(r"```python\n(.*?)```", (README.parent / "docs" / "api.md").read_text(encoding="utf-8"),
                          flags=re.S)
    exec(compile(block, "docs/api.md", "exec"), {"__name__": "api_example"})
    match = re.fullmatch(r"Λ=(\S+) H=(\d\.\d{3})\n", capsys.readouterr().out)
    assert match, "the example prints its choice and H"
    from niwt.config import RunConfig
    from niwt.pipeline import quick_config

    assert float(match.group(1)) in quick_config(RunConfig()).transfer.lam_grid  # chosen from the grid
    assert 0.0 <= float(match.group(2)) <= 1.0


@pytest.fixture(scope="module")
def small_world():
    return make_shapes(ShapesConfig(n_source=2, n_seen=6, n_unseen=3, n_val=2, n_source_images=4,
                                    n_trainval_images=10, n_test_seen_images=2, n_test_unseen_images=2))


def test_settings_map_class_ids_to_rows_and_back(small_world):
    d = small_world
    validation, final = build_settings(d, seed=0)
    assert final.classes.tolist() == [*d.seen_classes.tolist(), *d.unseen_classes.tolist()]
    ids = np.concatenate([d.unseen_classes[::-1], d.seen_classes[:2]])
    rows = final.rows(ids)
    assert rows.tolist() == [8, 7, 6, 0, 1]  # 6 seen rows first, then the unseen ones in order
    assert final.class_ids(rows).tolist() == ids.tolist()
    # The validation setting trains on the train classes only; a val class is one of its new classes.
    assert validation.rows(d.val_classes).tolist() == [4, 5]
    with pytest.raises(DataError, match="not classes of the validation setting"):
        validation.rows(d.unseen_classes[:1])


def test_validation_setting_never_sees_unseen_or_test_images(small_world):
    d = small_world
    validation, final = build_settings(d, seed=0)
    used = np.concatenate([validation.train_idx, validation.test_idx])
    assert not np.isin(used, d.test_seen_idx).any() and not np.isin(used, d.test_unseen_idx).any()
    assert np.isin(d.labels[validation.train_idx], d.train_classes).all()
    # 20 % of the train classes' training images are held out as the validation test's seen part.
    n_train_images = np.isin(d.labels[d.trainval_idx], d.train_classes).sum()
    held = validation.test_idx[np.isin(d.labels[validation.test_idx], d.train_classes)]
    assert held.size == n_train_images // 5
    assert not np.isin(held, validation.train_idx).any()


def test_top_level_seed_drives_the_dataset_unless_data_seed_is_set():
    from dataclasses import replace

    from niwt.config import RunConfig, resolve_config

    assert resolve_config(RunConfig(seed=5)).data.seed == 5
    cfg = RunConfig(seed=5)
    assert resolve_config(replace(cfg, data=replace(cfg.data, seed=2))).data.seed == 2


@pytest.fixture(scope="module")
def tiny_vgg():
    import torch

    from niwt import create_model

    torch.manual_seed(0)
    return create_model("vgg", 3, width=4, hidden=8)


def _bad_images():
    import torch

    good = torch.rand(2, 3, 32, 32)
    return {
        "NHWC": (good.permute(0, 2, 3, 1).contiguous(), r"\[N, H, W, C\]"),
        "one channel": (torch.rand(2, 1, 32, 32), "1 channel"),
        "uint8": ((good * 255).to(torch.uint8), "uint8"),
        "uint8 NumPy": ((good.numpy() * 255).astype(np.uint8), "uint8"),
        "another size": (torch.rand(2, 3, 24, 24), "24x24 px"),
        "3-d": (good[0], "3-d shape"),
        "NaN": (torch.full((2, 3, 32, 32), float("nan")), "NaN"),
    }


@pytest.mark.parametrize("case", list(_bad_images()))
@pytest.mark.parametrize("stage", ["train_classifier", "neuron_importance", "transfer"])
def test_bad_images_get_a_niwt_error_naming_argument_and_value(tiny_vgg, stage, case):
    import torch

    from niwt import NIWTError, UnseenWeightOptimizer, neuron_importance, train_classifier

    images, message = _bad_images()[case]
    with pytest.raises(NIWTError, match=message) as info:
        if stage == "train_classifier":
            train_classifier(tiny_vgg, images, torch.zeros(images.shape[0], dtype=torch.long), epochs=1)
        elif stage == "neuron_importance":
            neuron_importance(tiny_vgg, "features", images, torch.zeros(images.shape[0], dtype=torch.long))
        else:
            UnseenWeightOptimizer(max_steps=1).fit(tiny_vgg, images, np.ones((1, 16)))
    assert "`images`" in str(info.value) or "`pool`" in str(info.value)


def test_a_numpy_pool_and_numpy_labels_are_accepted(tiny_vgg):
    import copy

    import torch

    from niwt import UnseenWeightOptimizer, train_classifier

    model = copy.deepcopy(tiny_vgg)
    images = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    train_classifier(model, images, np.array([0, 1, 2, 0]), epochs=1, batch_size=2)
    opt = UnseenWeightOptimizer(max_steps=2).fit(model, images, np.ones((2, 16)))
    assert opt.weights_.shape == (2, 8) and torch.isfinite(opt.weights_).all()


def test_mapper_inputs_are_checked():
    from niwt import ImportanceMapper

    k, alpha, y = np.eye(3), np.ones((6, 4)), np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(DataError, match="`labels` must hold one class index per image"):
        ImportanceMapper(n_holdout=0).fit(k, alpha, y[:5])
    with pytest.raises(DataError, match=r"`labels` must lie in \[0, 3\)"):
        ImportanceMapper(n_holdout=0).fit(k, alpha, y + 1)
    with pytest.raises(DataError, match="`labels` must hold integer class indices, got dtype float64"):
        ImportanceMapper(n_holdout=0).fit(k, alpha, y.astype(float))
    mapper = ImportanceMapper(n_holdout=0, epochs=1).fit(k, alpha, y)
    with pytest.raises(DataError, match="`knowledge`"):
        mapper.predict(np.ones((2, 5)))


def test_dataset_repr_is_short(small_world):
    text = repr(small_world)
    assert len(text) < 400 and "shapes" in text and "\n" not in text
