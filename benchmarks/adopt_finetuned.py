"""A classifier fine-tuned the way a user would, outside niwt, then adopted by niwt as it is.

For each seed: EfficientNet-Lite0 with its ImageNet weights (the offline package's, as niwt maps
them onto timm's architecture) is fine-tuned on the 7 seen classes of the real-photo benchmark's
Fashion-MNIST folder by the plain timm + PyTorch loop below (its classifier alone for 5 epochs,
then every layer for 3, as niwt's fine-tuned arm), on the images niwt's folder split keeps for
training (so no test image is trained on), and its state dict saved. Then ``niwt adopt`` takes
those weights, nothing retrained, teaches the 3 unseen classes from their sentences and fits the
baselines on the same network's features. Printed: S, U, H, calibrated H, AUSUC and the curve's
best H per method over the seeds, beside niwt's own fine-tuned arm (``--beside``: the
real-photo benchmark's ``summary.json``); the wall time of ``adopt`` against the fine-tuning; and
how often the adopted run's seen predictions equal the user's network's own (they must, always).

    python benchmarks/adopt_finetuned.py [--seeds 5] [--per-class 100] [--out runs/adopt_finetuned]
                                         [--beside runs/real_photos/summary.json ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

ARCH = "tf_efficientnet_lite0"
METHODS = ("niwt", "niwt-bal", "ale", "dem", "eszsl", "sae")
BASELINES = METHODS[2:]
SIZE = 64


def training_images(root: Path) -> tuple[list[Path], list[int], list[Path], list[int], list[str]]:
    """The seen classes' training and test images as niwt's folder split draws them (data seed 0),
    with their classifier outputs (the seen classes in the table's order), and the seen names."""
    from niwt.data.formats.folder import load_folder

    loaded = load_folder(root, seed=0, check_images=False, val_fraction=3 / 7)
    data, paths = loaded.data, loaded.image_paths
    output = {int(c): k for k, c in enumerate(data.seen_classes)}

    def part(idx: np.ndarray) -> tuple[list[Path], list[int]]:
        return [root / paths[i] for i in idx], [output[int(data.labels[i])] for i in idx]

    train, test = part(data.trainval_idx), part(data.test_seen_idx)
    return (*train, *test, [data.class_names[c] for c in data.seen_classes])


# --------------------------------------------------------------------------- the user's own script
def fine_tune(images: list[Path], labels: list[int], n_classes: int, seed: int, out: Path) -> torch.nn.Module:
    """Fine-tune Lite0 on ``images`` with plain timm and PyTorch, and save its state dict to ``out``."""
    import timm
    from PIL import Image

    from niwt.models.timm_models import imagenet_state  # the ImageNet weights, offline

    torch.manual_seed(seed)
    net = timm.create_model(ARCH, pretrained=False, num_classes=n_classes)
    net.load_state_dict({k: v for k, v in imagenet_state(ARCH).items() if not k.startswith("classifier.")},
                        strict=False)
    mean, std = (torch.tensor(net.pretrained_cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE)), np.float32)
                                      / 255).permute(2, 0, 1) for p in images])
    x, y = (x - mean) / std, torch.tensor(labels)
    for epochs, params in ((5, net.get_classifier().parameters()), (3, net.parameters())):
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=5e-4)
        for _ in range(epochs):
            net.train()
            for batch in torch.randperm(len(y)).split(64):
                xb = torch.where(torch.rand(len(batch), 1, 1, 1) < 0.5, x[batch].flip(3), x[batch])  # flips
                loss = torch.nn.functional.cross_entropy(net(xb), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    net.eval()
    torch.save(net.state_dict(), out)
    return net
# --------------------------------------------------------------------------- end of the user's script


def user_predictions(net: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """The user's network's own predictions on images prepared by niwt's run (in [0, 1])."""
    mean, std = (torch.tensor(net.pretrained_cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        return net((images - mean) / std).argmax(1).numpy()


def seed_figures(run_dir: Path) -> dict[str, dict[str, float]]:
    from niwt.results import Comparison

    comparison = Comparison.from_dict(json.loads((run_dir / "metrics.json").read_text()))
    out = {}
    for r in comparison.runs[0].results:
        out[r.method] = {"S": r.report.seen_acc, "U": r.report.unseen_acc, "H": r.report.H,
                         "S cal": r.calibrated.seen_acc, "U cal": r.calibrated.unseen_acc, "H cal": r.calibrated.H,
                         "AUSUC": r.report.ausuc, "curve H*": r.report.curve_best_H}
    return out


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def table(rows: dict[str, dict[str, list[float]]], title: str) -> list[str]:
    keys = ("S", "U", "H", "S cal", "U cal", "H cal", "AUSUC", "curve H*")
    lines = [f"**{title}**", "", "| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(_cell(r[k]) for k in keys) + " |" for m, r in rows.items()]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=100, help="photos per class (default: 100)")
    parser.add_argument("--data", type=Path, help="the Fashion-MNIST folder (default: written under --out)")
    parser.add_argument("--out", type=Path, default=Path("runs/adopt_finetuned"))
    parser.add_argument("--beside", type=Path, nargs="*", default=[],
                        help="the real-photo benchmark's summary.json files (niwt's fine-tuned arm, either design)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from real_photos import write_dataset

    from niwt.pipeline.adoption import adopt
    from niwt.results import paired_difference
    from niwt.runs import load_run

    root = args.data or write_dataset("fashion", args.out / "data" / "fashion", args.per_class, None)
    train_x, train_y, test_x, test_y, seen = training_images(root)
    rows: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    times: list[dict[str, float]] = []
    for seed in range(args.seeds):
        folder = args.out / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        net = fine_tune(train_x, train_y, len(seen), seed, folder / "weights.pt")
        tuned = time.perf_counter() - t0
        t0 = time.perf_counter()
        adopt(f"timm/{ARCH}", root, folder / "run", weights=folder / "weights.pt", methods=METHODS, force=True,
              overrides=[f"seed={seed}", "data.seed=0", f"data.resize={SIZE}", f"data.crop={SIZE}"])
        adopted = time.perf_counter() - t0
        run = load_run(folder / "run")
        images = run.load_images(test_x)
        with torch.no_grad():
            ours = run.model(images)[:, : len(seen)].argmax(1).numpy()
        agree = float(np.mean(ours == user_predictions(net, images)))
        user_acc = float(np.mean(user_predictions(net, images) == np.asarray(test_y)))
        times.append({"seed": seed, "fine-tune s": tuned, "adopt s": adopted, "seen agreement": agree,
                      "user's seen accuracy (top-1 over seen)": user_acc})
        for method, figures in seed_figures(folder / "run").items():
            for k, v in figures.items():
                rows[method].setdefault(k, []).append(v)
        print(f"seed {seed}: fine-tuning {tuned:.0f} s, adopt {adopted:.0f} s, seen predictions equal to the "
              f"network's own on {agree:.0%} of {len(test_x)} test images", flush=True)
    lines = table(rows, f"Adopted Lite0, fine-tuned outside niwt ({args.seeds} seeds)")
    figures = {"adopted": rows, "times": times}
    for key, label in (("H cal", "calibrated"), ("H", "plain")):
        best = np.max([rows[b][key] for b in BASELINES], axis=0)
        diff = paired_difference("niwt", "best baseline", np.asarray(rows["niwt"][key]), best, key)
        figures[f"niwt - best baseline ({label})"] = diff.to_dict()
        lines.append(f"- {label}: niwt − the best baseline of each seed: {diff.mean:+.3f} [{diff.low:+.3f}, "
                     f"{diff.high:+.3f}], ahead on {diff.wins}/{diff.seeds} seeds")
    tune, took = np.array([t["fine-tune s"] for t in times]), np.array([t["adopt s"] for t in times])
    lines += ["", f"- wall time per seed: fine-tuning {tune.mean():.0f} ± {tune.std():.0f} s, adopt (no training, "
              f"{len(METHODS)} methods) {took.mean():.0f} ± {took.std():.0f} s, ratio adopt / fine-tuning "
              f"{np.mean(took / tune):.2f}",
              f"- seen predictions of the adopted run equal to the network's own: "
              f"{min(t['seen agreement'] for t in times):.0%} of test images on every seed (lowest seed)", ""]
    for path in args.beside:
        beside = json.loads(path.read_text())
        for arm in ("fashion-finetuned", "fashion-finetuned-rows"):
            if arm in beside:
                arm_rows = {m: {k: v for k, v in r.items()} for m, r in beside[arm]["methods"].items()}
                lines += table(arm_rows, f"niwt's own fine-tuned arm, {arm} ({beside[arm]['seeds']} seeds, "
                                         f"{beside[arm]['seconds'] / beside[arm]['seeds']:.0f} s per seed with "
                                         "its training)")
                figures[arm] = beside[arm]
    text = "\n".join(lines)
    print(text)
    (args.out / "adopt_finetuned.md").write_text(text + "\n")
    (args.out / "adopt_finetuned.json").write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
