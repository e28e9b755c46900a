"""Config loading: unknown keys and wrong types rejected with the dotted key named."""

from __future__ import annotations

import pytest

from niwt.config import (
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from niwt.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    path = tmp_path / "c.toml"
    save_config(RunConfig(), path)
    assert load_config(path) == RunConfig()


def test_partial_file_keeps_other_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 4\n[transfer]\nlam = 1e-4\nlam_grid = [0, 1e-3]\n[model]\narch = "resnet"\n')
    cfg = load_config(path)
    assert (cfg.seed, cfg.transfer.lam, cfg.transfer.lam_grid, cfg.model.arch) == (4, 1e-4, (0.0, 1e-3), "resnet")
    assert cfg.train == RunConfig().train


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[transfer]\nlamda = 1.0\n", r"c\.toml: unknown setting `transfer\.lamda`; valid keys here: lam, lr"),
        ("[transfer]\nlam = \"big\"\n", r"`transfer\.lam` must be a number, got str 'big'"),
        ("[train]\nepochs = 2.5\n", r"`train\.epochs` must be an integer, got float 2\.5"),
        ("[train]\naugment = 1\n", r"`train\.augment` must be a boolean"),
        ("[transfer]\nlam_grid = [0.1, \"x\"]\n", r"`transfer\.lam_grid\[1\]` must be a number"),
        ("transfer = 3\n", r"`transfer` must be a table of settings"),
        ("[model]\narch = \"vgg\"\ndropout = 1.5\n", r"`model\.dropout` must lie in \[0, 1\)"),
        ("[transfer]\npool = \"imagenet\"\n", r"`transfer\.pool` must be one of \['source', 'seen', 'noise'\]"),
        ("seed = \n", r"not valid TOML"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_overrides_parse_toml_values_and_bare_words():
    cfg = apply_overrides(RunConfig(), ["transfer.lam=1e-4", "transfer.pool=seen", "data.image_size=48",
                                        "transfer.lam_grid=[0, 0.01]", "train.augment=false"])
    assert cfg.transfer.lam == 1e-4 and cfg.transfer.pool == "seen" and cfg.data.image_size == 48
    assert cfg.transfer.lam_grid == (0.0, 0.01) and cfg.train.augment is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("transfer.lambda=1", r"unknown setting `transfer\.lambda`"),
        ("trasnfer.lam=1", r"unknown config section `trasnfer`"),
        ("transfer.lam", r"must look like section\.key=value"),
        ("train.epochs=many", r"`train\.epochs` must be an integer, got str 'many'"),
    ],
)
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(RunConfig(), [override])


def test_to_dict_is_plain_and_from_dict_inverts_it():
    d = to_dict(RunConfig())
    assert isinstance(d["transfer"]["lam_grid"], list)
    assert from_dict(RunConfig, d) == RunConfig()
