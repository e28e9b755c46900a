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


def test_reproduce_quick_writes_the_claims_table_with_verdicts(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "--quick", "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    claims = {c["claim"]: c for c in metrics["claims"]}
    assert {"NIWT beats ALE (H)", "NIWT beats DEM (H)", "finetuned beats fixed (NIWT H)",
            "attributes beat text (NIWT H)", "a small Λ raises U over Λ = 0"} <= set(claims)
    arms = {a["arm"]: a for a in metrics["arms"]}
    niwt = [r["H"] for r in arms["niwt / finetuned / attributes"]["per_seed"]]
    ale = [r["H"] for r in arms["ale / finetuned / attributes"]["per_seed"]]
    c = claims["NIWT beats ALE (H)"]
    assert c["seeds"] == 2 and c["mean_difference"] == pytest.approx((niwt[0] - ale[0] + niwt[1] - ale[1]) / 2)
    for claim in claims.values():
        lo, hi = claim["ci95"]
        expected = "holds" if lo > 0 else "does not hold" if hi < 0 else "inconclusive"
        assert claim["verdict"] == expected and claim["paper"]
    curve = metrics["lambda_curve"]
    assert len(curve["unseen_acc"]) == 2 and len(curve["unseen_acc"][0]) == len(curve["lams"])
    assert len(curve["validation_peak_lam"]) == 2  # one per seed
    assert all(lam in curve["lams"] for lam in curve["validation_peak_lam"])
    assert (out / "plots" / "lambda_curve.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "claim" in text and "verdict" in text and "the paper's findings beside them" in text


def test_ablate_quick_compares_each_alternative_with_the_papers_choice(tmp_path, capsys):
    from niwt.pipeline.experiments import ABLATIONS

    out = tmp_path / "ablate"
    assert main(["ablate", "--quick", "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rows = metrics["ablations"]
    assert [(r["factor"], r["alternative"]) for r in rows] == [(f, alt) for f, _, alt, _ in ABLATIONS]
    arms = {a["arm"]: [r["H"] for r in a["per_seed"]] for a in metrics["arms"]}
    paper = arms["niwt (paper's choices)"]
    assert len(rows) == len(ABLATIONS) > 0 and len(paper) == 2
    for row in rows:
        alt = arms[f"{row['factor']}: {row['alternative']}"]
        assert row["mean_difference"] == pytest.approx(sum(a - b for a, b in zip(alt, paper)) / 2)
    # Each alternative ran with its own stage key but on the paper arm's trained backbones.
    stages = {p.name for p in (out / "stages").iterdir()}
    assert "seed0.paper.train_final" in stages and not any("ablation0.train" in s for s in stages)
    assert "ablation" in capsys.readouterr().out


def test_claim_verdicts_worked_by_hand():
    from niwt.results import AblationRow, Claim, paired_difference

    holds = paired_difference("a", "b", [0.5, 0.6, 0.7], [0.4, 0.4, 0.5])  # differences 0.1, 0.2, 0.2
    assert holds.mean == pytest.approx(0.5 / 3) and 0.1 - 1e-12 <= holds.low and holds.high <= 0.2 + 1e-12
    assert Claim("a beats b", "paper", holds).verdict == "holds"
    fails = paired_difference("a", "b", [0.1, 0.2], [0.3, 0.5])
    assert Claim("a beats b", "paper", fails).verdict == "does not hold"
    mixed = paired_difference("a", "b", [0.1, 0.5], [0.3, 0.2])
    assert Claim("a beats b", "paper", mixed).verdict == "inconclusive"
    one = paired_difference("a", "b", [0.9], [0.1])
    assert Claim("a beats b", "paper", one).verdict == "inconclusive"  # never from one seed
    assert AblationRow("f", "x", "y", fails).verdict == "the paper's choice is better"
    assert AblationRow("f", "x", "y", holds).verdict == "the alternative is better"


def test_compare_and_reproduce_default_to_the_comparison_world():
    from niwt.cli import _load, get_args_parser
    from niwt.pipeline.presets import COMPARISON_WORLD

    for command in ("compare", "reproduce"):
        config = _load(get_args_parser().parse_args([command]))
        assert {k: getattr(config.data, k) for k in COMPARISON_WORLD} == COMPARISON_WORLD
    for command in ("sweep-lambda", "ablate"):
        demo = _load(get_args_parser().parse_args([command]))
        assert demo.data.n_test_seen_images == 15  # the demo's world


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
    import niwt.pipeline.networks

    trained = []
    monkeypatch.setattr(niwt.pipeline.networks, "train_classifier", lambda *a, **k: trained.append(k.get("desc")))
    out = tmp_path / "never"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert trained == []  # refused before any model was trained
    assert list(tmp_path.iterdir()) == []


def test_compare_also_reports_every_method_with_calibrated_stacking_and_paired_differences(compare_run):
    calibrated = compare_run["methods_calibrated"]
    assert set(calibrated) == set(compare_run["methods"])
    assert len(compare_run["per_seed"]) == 2
    for seed_run in compare_run["per_seed"]:
        assert set(seed_run["methods"]) == set(compare_run["methods"])
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
