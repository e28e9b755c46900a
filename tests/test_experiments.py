"""compare / sweep-lambda / reproduce on the tiny world, and their input errors."""

from __future__ import annotations

import json

import pytest

from niwt.cli import main
from niwt.evaluate import GZSLReport
from niwt.results import Comparison, MethodResult, SeedRun, Selection


@pytest.fixture(scope="session")
def compare_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "compare"
    assert main(["compare", "--quick", "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_compare_writes_mean_and_std_for_every_method(compare_run):
    methods = compare_run["methods"]
    assert set(methods) == {"niwt", "niwt-bal", "ale", "dem", "eszsl", "sae"}
    for m in methods.values():
        for key in ("seen_acc", "unseen_acc", "H", "zsl_acc", "ausuc"):
            assert 0.0 <= m[key] <= 1.0 and m[f"{key}_std"] >= 0.0
    per_seed = compare_run["per_seed"]
    assert len(per_seed) == 2 and [run["seed"] for run in per_seed] == [0, 1]
    h = [run["methods"]["ale"]["H"] for run in per_seed]
    assert methods["ale"]["H"] == pytest.approx(sum(h) / 2)
    assert methods["ale"]["H_std"] == pytest.approx(abs(h[0] - h[1]) / 2)


def test_compare_records_grids_and_choices(compare_run):
    first = {name: m["selection"] for name, m in compare_run["per_seed"][0]["methods"].items()}
    assert [row["lam"] for row in first["niwt"]["grid"]] == [0.0, 0.01]
    eszsl = first["eszsl"]
    assert len(eszsl["grid"]) == 9 and set(eszsl["chosen"]) == {"alpha", "gamma"}
    best = max(eszsl["grid"], key=lambda r: r["H"])
    assert eszsl["chosen"] == {"alpha": best["alpha"], "gamma": best["gamma"]}


def test_comparison_summary_worked_by_hand():
    def run(seed, s, h, ausuc):
        report = GZSLReport(seen_acc=s, unseen_acc=0.4, H=h, zsl_acc=0.5, ausuc=ausuc, calibration=0.0)
        return SeedRun(seed, (MethodResult("m", report, Selection({"lam": 0.0})),))

    out = Comparison((run(0, 0.2, 0.3, 0.1), run(1, 0.4, 0.5, 0.3))).summary()["m"]
    assert out["seen_acc"] == pytest.approx(0.3) and out["seen_acc_std"] == pytest.approx(0.1)
    assert out["H"] == pytest.approx(0.4) and out["ausuc_std"] == pytest.approx(0.1)
    assert out["unseen_acc_std"] == 0.0


def test_sweep_lambda_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep-lambda", "--quick", "--lams", "0,1e-3,1e-1", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Λ" in text and "lambda_sweep.png" in text
    png = (out / "plots" / "lambda_sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = json.loads((out / "metrics.json").read_text())["sweep"]
    assert [r["lam"] for r in sweep] == [0.0, 1e-3, 1e-1]
    # A strong pull towards the mean seen row shrinks the unseen rows.
    assert sweep[-1]["unseen_norm_ratio"] < sweep[0]["unseen_norm_ratio"]


def test_reproduce_quick_covers_the_paper_grid(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "--quick", "--out", str(out), "--quiet"]) == 0
    table = json.loads((out / "metrics.json").read_text())["table"]
    combos = {(r["arch"], r["mode"], r["knowledge"], r["method"]) for r in table}
    assert len(combos) == 2 * 2 * 2 * 3
    vgg_ft = next(r for r in table if (r["arch"], r["mode"], r["knowledge"], r["method"]) ==
                  ("vgg", "finetuned", "attributes", "niwt"))
    # The paper's NIWT H (VGG16 finetuned, attributes) is 48.1 on AWA2 and 37.0 on CUB; baselines have none.
    assert (vgg_ft["paper_H_AWA2"], vgg_ft["paper_H_CUB"]) == (48.1, 37.0)
    assert all(r["paper_H_AWA2"] is None for r in table if r["method"] != "niwt")
    text = capsys.readouterr().out
    assert "paper H AWA2" in text and "48.1%" in text and "37.0%" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--quick", "--methods", "niwt,clip"], "unknown method(s) ['clip']; valid methods: niwt, niwt-bal, ale"),
        (["compare", "--quick", "--set", "data.n_val=0"], "n_val must be a positive int"),
        (["compare", "--quick", "--set", "compare.ale_lr=[0.1, \"fast\"]"], "`compare.ale_lr[1]` must be a number"),
        (["compare", "--quick", "--set", "transfer.lam_grid=[]"], "`transfer.lam_grid` is empty"),
        (["sweep-lambda", "--quick", "--lams", "0,x"], "`--lams` must be comma-separated numbers"),
    ],
)
def test_bad_input_fails_before_training(argv, message, tmp_path, capsys, monkeypatch):
    import niwt.pipeline

    trained = []
    monkeypatch.setattr(niwt.pipeline, "train_classifier", lambda *a, **k: trained.append(k.get("desc")))
    out = tmp_path / "never"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert trained == []  # refused before any model was trained
    assert list(tmp_path.iterdir()) == []


def test_compare_also_reports_every_method_with_calibrated_stacking_and_paired_differences(compare_run):
    calibrated = compare_run["methods_calibrated"]
    assert set(calibrated) == set(compare_run["methods"])
    for seed_run in compare_run["per_seed"]:
        for m in seed_run["methods"].values():
            gamma = m["selection"]["calibrated_gamma"]
            assert m["calibrated"]["calibration"] == pytest.approx(gamma)  # chosen on validation, applied to test
    pairs = {(p["a"], p["b"]): p for p in compare_run["paired_H"]}
    p = pairs[("niwt", "ale")]
    h = [(run["methods"]["niwt"]["H"], run["methods"]["ale"]["H"]) for run in compare_run["per_seed"]]
    assert p["mean_difference"] == pytest.approx(sum(a - b for a, b in h) / len(h))
    assert p["ci95"][0] <= p["mean_difference"] <= p["ci95"][1]


def test_paired_bootstrap_worked_by_hand():
    def run(seed, h_a, h_b):
        def result(name, h):
            return MethodResult(name, GZSLReport(seen_acc=h, unseen_acc=h, H=h, zsl_acc=h, ausuc=h, calibration=0.0),
                                Selection({}))
        return SeedRun(seed, (result("a", h_a), result("b", h_b)))

    comp = Comparison((run(0, 0.5, 0.4), run(1, 0.6, 0.3)))
    (p,) = comp.paired()
    # differences 0.1 and 0.3: mean 0.2; any resample of the two seeds has a mean in [0.1, 0.3]
    assert p.mean == pytest.approx(0.2) and 0.1 - 1e-12 <= p.low <= p.high <= 0.3 + 1e-12
    assert (p.wins, p.seeds, p.verdict) == (2, 2, "a ahead")
    (q,) = Comparison((run(0, 0.5, 0.4), run(1, 0.3, 0.6))).paired()
    assert q.verdict == "inconclusive" and q.wins == 1


def test_balance_unseen_rows_worked_by_hand():
    import torch

    from niwt.models.head import ExtendableLinear
    from niwt.transfer import balance_unseen

    class M:
        classifier = ExtendableLinear(2, 2)

    m = M()
    with torch.no_grad():
        m.classifier.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 5.0]]))  # norms 3 and 5: mean 4
        m.classifier.bias.copy_(torch.tensor([1.0, -3.0]))  # mean -1
    m.classifier.set_unseen(torch.tensor([[0.5, 0.0], [0.0, -2.0]]))
    balance_unseen(m)
    assert torch.allclose(m.classifier.unseen_weight, torch.tensor([[4.0, 0.0], [0.0, -4.0]]))
    assert torch.allclose(m.classifier.unseen_bias, torch.tensor([-1.0, -1.0]))
