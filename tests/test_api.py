"""The front door: the README's Python example runs as written, and the API's helpers do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from niwt import ShapesConfig, build_settings, make_shapes
from niwt.errors import DataError

README = Path(__file__).resolve().parents[1] / "README.md"


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
