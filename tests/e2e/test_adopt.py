"""``niwt adopt``: a classifier trained elsewhere becomes a run as it is (its seen logits are the
network's own, through the index column's mapping), the run's commands work on it, and every bad
input is refused before any work with nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from niwt.cli import main
from niwt.data.example import write_example_folder
from niwt.errors import ConfigError, DataError
from niwt.pipeline.adoption import adopt
from niwt.runs import load_run
from niwt.runs.loaded import RunFormatError
from tests._configs import SMALL_RUN

FAST = ["data.resize=32", "data.crop=32", "mapping.epochs=3", "mapping.n_holdout=1", "transfer.lam_grid=[0.0, 0.01]",
        "transfer.max_steps=5", "transfer.batch_size=8", "explain.epochs=5"]
N_SEEN, N_UNSEEN = 6, 2
PERMUTATION = [3, 0, 5, 1, 4, 2]  # seen class k of the table is output PERMUTATION[k] of the classifier


def _rewrite_table(folder: Path, index: list[str] | None) -> None:
    """``classes.csv`` with an ``index`` column holding ``index`` for the seen rows, in order."""
    path = folder / "classes.csv"
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    header, body = rows[0], rows[1:]
    if index is not None:
        header = [*header, "index"]
        values = iter(index)
        body = [[*row, next(values) if row[1] == "seen" else ""] for row in body]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *body])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = write_example_folder(tmp_path_factory.mktemp("adopt") / "shapes", n_seen=N_SEEN, n_unseen=N_UNSEEN,
                               images_per_class=8, seed=3)
    _rewrite_table(out, [str(i) for i in PERMUTATION])
    return out


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=N_SEEN).eval()


@pytest.fixture(scope="module")
def weights(network, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "r18.pt"
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def adopted(folder, weights, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "adopted"
    assert main(["adopt", "resnet18", "--weights", str(weights), "--data", str(folder), "--out", str(out),
                 "--methods", "niwt,sae", "--quiet", *sum((["--set", s] for s in FAST), [])]) == 0
    return out


def test_the_adopted_runs_seen_logits_are_the_classifiers_own_through_the_index_column(adopted, folder, network):
    run = load_run(adopted)
    assert run.config.train.mode == "adopted" and run.config.eval.validation == "held_out_rows"
    seen = [run.class_names[c] for c in run.fit_classes]
    table = list(csv.DictReader((folder / "classes.csv").open(encoding="utf-8")))
    assert seen == [r["class"] for r in table if r["split"] == "seen"]
    paths = sorted((folder / seen[0]).glob("*.png"))[:2] + sorted((folder / seen[4]).glob("*.png"))[:2]
    images = run.load_images(paths)
    with torch.no_grad():
        ours = run.model(images)[:, : len(seen)]
        theirs = network(images)
    torch.testing.assert_close(ours, theirs[:, PERMUTATION], rtol=1e-5, atol=1e-5)
    assert run.model.classifier.n_unseen == N_UNSEEN
    # the seen class the run predicts among the seen ones is the classifier's own prediction, named
    assert [seen[r] for r in ours.argmax(1).tolist()] == [seen[PERMUTATION.index(j)] for j in theirs.argmax(1).tolist()]


def test_the_adopted_run_is_validated_inside_the_network_and_compared_with_baselines(adopted):
    metrics = load_run(adopted).metrics
    results = {r.method: r for r in metrics.result.runs[0].results}
    assert set(results) == {"niwt", "sae"}
    assert len(results["niwt"].selection.grid) == 2  # Λ chosen on the held-out rows
    for method in results.values():
        assert method.calibrated is not None
        assert np.isfinite([method.report.H, method.calibrated.H]).all()


def test_the_runs_commands_work_on_an_adopted_run(adopted, folder, tmp_path, capsys):
    image = sorted(folder.glob("*/*.png"))[0]
    assert main(["predict", str(adopted), str(image)]) == 0
    assert main(["explain", str(adopted), str(image), "--out", str(tmp_path / "why"), "--quiet"]) == 0
    assert list((tmp_path / "why").glob("*.png"))
    assert main(["names", str(adopted), "--quiet"]) == 0
    assert main(["report", str(adopted), "--quiet"]) == 0
    taught = tmp_path / "taught"
    assert main(["teach", str(adopted), "--name", "new-disc", "--attributes", "shape_disc=1,colour_red=1",
                 "--out", str(taught)]) == 0
    run = load_run(taught)
    assert "new-disc" in run.row_names
    assert main(["forget", str(taught), "--name", "new-disc"]) == 0


def test_a_python_module_is_adopted_and_read_back_with_the_same_module(folder, network, tmp_path):
    out = tmp_path / "module-run"
    adopt(network, folder, out, layer="layer4.0", overrides=FAST)
    with pytest.raises(RunFormatError, match="model="):
        load_run(out)
    run = load_run(out, model=torchvision.models.resnet18(num_classes=N_SEEN))
    images = run.load_images(sorted(folder.glob("*/*.png"))[:3])
    with torch.no_grad():
        torch.testing.assert_close(run.model(images)[:, :N_SEEN], network(images)[:, PERMUTATION], rtol=1e-5,
                                   atol=1e-5)


def test_niwt_run_cannot_pretend_to_adopt(tmp_path):
    from niwt.config import load_config
    from niwt.pipeline import run_niwt

    config = tmp_path / "c.toml"
    config.write_text(SMALL_RUN.replace("[train]", '[train]\nmode = "adopted"'))
    with pytest.raises(ConfigError, match="niwt adopt"):
        run_niwt(load_config(config))


# ----------------------------------------------------------------------------- refused before any work


def _copy_folder(folder: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(folder, dest)
    return dest


@pytest.mark.parametrize("index, message", [
    (["0", "1", "2", "3", "4", ""], r"line 7, column `index` \(class .*\): empty index"),
    (["0", "1", "2", "3", "4", "4"], r"output 4 is already class .*'s \(line 6\)"),
    (["0", "1", "2", "3", "4", "9"], r"line 7 \(class .*\): index 9 names no output; the classifier's outputs are 0 to 5"),
    (["0", "1", "2", "3", "4", "x"], r"must be a whole number"),
])
def test_a_bad_index_column_is_refused_naming_the_line(folder, weights, tmp_path, index, message):
    data = _copy_folder(folder, tmp_path / "data")
    _rewrite_table(_strip_index(data), index)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        adopt("resnet18", data, out, weights=weights, overrides=FAST)
    assert not out.exists()


def _strip_index(data: Path) -> Path:
    path = data / "classes.csv"
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    drop = rows[0].index("index")
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[v for i, v in enumerate(r) if i != drop] for r in rows])
    return data


def test_an_unseen_class_with_an_index_is_refused(folder, weights, tmp_path):
    data = _strip_index(_copy_folder(folder, tmp_path / "data"))
    path = data / "classes.csv"
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    rows[0].append("index")
    for k, row in enumerate(rows[1:]):
        row.append(str(k))
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataError, match="an unseen class has no output of the classifier"):
        adopt("resnet18", data, tmp_path / "out", weights=weights, overrides=FAST)


def test_a_head_of_another_size_is_refused(folder, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(torchvision.models.resnet18(num_classes=N_SEEN + 3).state_dict(), str(path))
    with pytest.raises(DataError, match=f"the classifier has {N_SEEN + 3} outputs and .* lists {N_SEEN} seen"):
        adopt("resnet18", folder, tmp_path / "out", weights=path, overrides=FAST)
    assert not (tmp_path / "out").exists()


def test_weights_of_another_architecture_are_refused_naming_the_first_misfits(folder, tmp_path):
    path = tmp_path / "r34.pt"
    torch.save(torchvision.models.resnet34(num_classes=N_SEEN).state_dict(), path)
    with pytest.raises(DataError, match=r"do not fit resnet18: unexpected layer1\.2\.bn1\.bias"):
        adopt("resnet18", folder, tmp_path / "out", weights=path, overrides=FAST)
    path = tmp_path / "vgg.pt"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(DataError, match=r"hold no `fc.weight`, the classifier of resnet18.*features\.0\.weight"):
        adopt("resnet18", folder, tmp_path / "out", weights=path, overrides=FAST)
    assert not (tmp_path / "out").exists()


def test_a_pickled_model_is_refused_saying_how_to_save_a_state_dict(folder, network, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(network, path)
    with pytest.raises(DataError, match=r"pickled.*torch\.save\(model\.state_dict\(\)"):
        adopt("resnet18", folder, tmp_path / "out", weights=path, overrides=FAST)
    assert main(["adopt", "resnet18", "--weights", str(path), "--data", str(folder), "--out",
                 str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_a_seen_class_without_images_is_refused(folder, weights, tmp_path):
    data = _copy_folder(folder, tmp_path / "data")
    seen = next(r["class"] for r in csv.DictReader((data / "classes.csv").open(encoding="utf-8"))
                if r["split"] == "seen")
    for image in (data / seen).iterdir():
        image.unlink()
    with pytest.raises(DataError, match=seen):
        adopt("resnet18", data, tmp_path / "out", weights=weights, overrides=FAST)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arch, weights, error, message", [
    ("vgg", "w.pt", ConfigError, "cannot adopt a 'vgg' classifier"),
    ("resnet18", None, ConfigError, "needs its weights file"),
    ("resnet18", "missing.pt", DataError, "not found"),
])
def test_an_arch_or_weights_argument_that_cannot_work_is_refused(folder, tmp_path, arch, weights, error, message):
    with pytest.raises(error, match=message):
        adopt(arch, folder, tmp_path / "out", weights=None if weights is None else tmp_path / weights)
    assert not (tmp_path / "out").exists()


def test_settings_that_would_retrain_the_classifier_are_refused(folder, weights, tmp_path):
    with pytest.raises(ConfigError, match="taken as it is"):
        adopt("resnet18", folder, tmp_path / "out", weights=weights, overrides=['eval.validation="networks"'])


def test_a_timm_classifier_is_adopted_with_its_own_input_convention(folder, tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=N_SEEN).eval()
    path = tmp_path / "r10t.safetensors"
    save_file(net.state_dict(), str(path))
    out = tmp_path / "timm-run"
    adopt("timm/resnet10t", folder, out, weights=path, overrides=FAST)
    run = load_run(out)
    assert run.config.data.normalize is False  # the network normalises its inputs itself
    images = run.load_images(sorted(folder.glob("*/*.png"))[:3])
    cfg = net.pretrained_cfg
    mean, std = (torch.tensor(cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        torch.testing.assert_close(run.model(images)[:, :N_SEEN], net((images - mean) / std)[:, PERMUTATION],
                                   rtol=1e-5, atol=1e-5)


def test_the_adopted_config_prepares_images_as_the_weights_expect_and_holds_out_as_many_as_are_unseen(folder):
    from niwt.data.formats.folder import find_class_csv, read_class_table
    from niwt.pipeline.adoption import ADOPT_VAL_SPLITS, adopt_config

    table = read_class_table(find_class_csv(folder))
    tv = adopt_config("resnet18", folder, table, weights="w.pt")
    assert (tv.data.resize, tv.data.crop, tv.data.normalize) == (256, 224, True)
    assert tv.data.val_fraction == pytest.approx(N_UNSEEN / N_SEEN)
    assert tv.eval.val_splits == ADOPT_VAL_SPLITS and tv.knowledge.source == "attributes"
    lite = adopt_config("timm/tf_efficientnet_lite0", folder, table, weights="w.pt", overrides=["data.crop=64"])
    assert (lite.data.crop, lite.data.normalize) == (64, False)  # given, and the network normalises itself
