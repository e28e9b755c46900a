"""Importance extraction throughput vs a plain forward + backward, and memory while streaming a pool.

* Throughput: ``neuron_importance(model, layer, pool, labels, batch_size=B)`` against the physical
  floor of the step, a plain forward + backward of the same batches (``torch.autograd.grad`` of the
  summed label logits w.r.t. every parameter, on a throwaway copy of the model, eval mode), and a
  forward pass alone (``torch.no_grad``). Same process, same images, repetitions interleaved,
  medians reported. ``ratio_to_fwd_bwd`` = importance images/s / forward+backward images/s.
* Memory: each pool size (1x, 4x, 10x the batch) is streamed in a fresh subprocess; the figure is the
  peak resident memory during extraction above the resident memory after building the model and
  allocating the pool (``peak_mb``); ``memory_growth_10x`` = peak(10x) / peak(1x). For contrast, the
  VGG-like model is also run unstreamed (the whole pool as one batch).

Usage::

    python benchmarks/importance.py            # VGG-like (32 px), VGG16 and ResNet-101 (224 px)
    python benchmarks/importance.py --quick    # VGG-like model only, under a minute

Tables go to stdout, progress to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import PeakMemory, emit, environment, fmt_table, log, median, peak_rss_mib, reset_peak_rss, rss_mib

from niwt.importance import neuron_importance
from niwt.models import Backbone, create_model

# name used in the records -> (registry name, constructor kwargs, image side)
MODELS = {
    "vgg": ("vgg", {"width": 32, "hidden": 256, "image_size": 32}, 32),
    "vgg16": ("tv_vgg16", {"weights": "none"}, 224),
    "resnet101": ("tv_resnet101", {"weights": "none"}, 224),
}
N_CLASSES = 30
POOL_FACTORS = (1, 4, 10)  # pool sizes in batches; the VGG-like model also runs 20x

TARGET_RATIO = 0.8


def build_model(key: str, seed: int) -> Backbone:
    """The backbone ``key`` with random weights (seeded), in eval mode."""
    name, kwargs, _ = MODELS[key]
    torch.manual_seed(seed)
    return create_model(name, N_CLASSES, **kwargs).eval()


def make_pool(n: int, side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images ``[n, 3, side, side]`` and random labels in ``[0, N_CLASSES)``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, side, side, generator=gen), torch.randint(N_CLASSES, (n,), generator=gen)


def importance_pass(model: Backbone, images: torch.Tensor, labels: torch.Tensor, batch: int | None) -> None:
    neuron_importance(model, model.importance_layer, images, labels, "sum", batch_size=batch)


def fwd_bwd_pass(model: Backbone, images: torch.Tensor, labels: torch.Tensor, batch: int) -> None:
    """Forward + backward of the label logits w.r.t. every parameter, batch by batch (eval mode)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for start in range(0, images.shape[0], batch):
        logits = model(images[start : start + batch])
        picked = logits.gather(1, labels[start : start + batch].view(-1, 1)).sum()
        torch.autograd.grad(picked, params)


@torch.no_grad()
def forward_pass(model: Backbone, images: torch.Tensor, batch: int) -> None:
    for start in range(0, images.shape[0], batch):
        model(images[start : start + batch])


def throughput(key: str, batch: int, n_images: int, reps: int, seed: int) -> dict:
    """Images per second of importance, forward + backward, and forward alone (medians over reps)."""
    side = MODELS[key][2]
    model = build_model(key, seed)
    floor = copy.deepcopy(model).eval()  # the forward + backward runs on a throwaway copy
    images, labels = make_pool(n_images, side, seed)
    warm = slice(0, batch)  # one-off costs (thread pools, oneDNN primitives) out of the timings
    importance_pass(model, images[warm], labels[warm], batch)
    fwd_bwd_pass(floor, images[warm], labels[warm], batch)
    forward_pass(floor, images[warm], batch)
    runs = {"importance": ([], []), "fwd_bwd": ([], []), "forward": ([], [])}
    passes = {
        "importance": lambda: importance_pass(model, images, labels, batch),
        "fwd_bwd": lambda: fwd_bwd_pass(floor, images, labels, batch),
        "forward": lambda: forward_pass(floor, images, batch),
    }
    for rep in range(reps):
        for name, fn in passes.items():
            with PeakMemory() as mem:
                start = time.perf_counter()
                fn()
                seconds = time.perf_counter() - start
            runs[name][0].append(seconds)
            runs[name][1].append(mem.extra_mib)
        log(f"  {key} rep {rep}: " + ", ".join(f"{k} {v[0][-1]:.3f} s" for k, v in runs.items()))
    ips = {name: n_images / median(times) for name, (times, _) in runs.items()}
    return {
        "model": key,
        "image_size": side,
        "batch_size": batch,
        "n_images": n_images,
        "reps": reps,
        "importance_images_per_s": ips["importance"],
        "fwd_bwd_images_per_s": ips["fwd_bwd"],
        "forward_images_per_s": ips["forward"],
        "ratio_to_fwd_bwd": ips["importance"] / ips["fwd_bwd"],
        "ratio_to_fwd_bwd_best": min(runs["fwd_bwd"][0]) / min(runs["importance"][0]),
        "ratio_to_forward": ips["importance"] / ips["forward"],
        "importance_peak_mb": max(runs["importance"][1]),
        "fwd_bwd_peak_mb": max(runs["fwd_bwd"][1]),
        "forward_peak_mb": max(runs["forward"][1]),
        "importance_seconds": [round(t, 4) for t in runs["importance"][0]],
        "fwd_bwd_seconds": [round(t, 4) for t in runs["fwd_bwd"][0]],
        "forward_seconds": [round(t, 4) for t in runs["forward"][0]],
    }


def memory_child(key: str, n_pool: int, batch: int, streamed: bool, seed: int) -> dict:
    """Run in a fresh process: peak extra memory of one extraction over the pool."""
    side = MODELS[key][2]
    model = build_model(key, seed)
    images, labels = make_pool(n_pool, side, seed)  # allocated (and touched) before the baseline
    baseline = rss_mib()
    exact = reset_peak_rss()
    trace: list[tuple[float, float]] = []

    def after_batch(_done: int) -> None:  # resident and peak memory above the baseline, batch by batch
        trace.append((round(rss_mib() - baseline, 2), round(peak_rss_mib() - baseline, 2)))

    start = time.perf_counter()
    neuron_importance(model, model.importance_layer, images, labels, "sum",
                      batch_size=batch if streamed else None, progress=after_batch)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    return {
        "model": key,
        "n_pool": n_pool,
        "batch_size": batch,
        "streamed": streamed,
        "baseline_mb": baseline,
        "peak_mb": max(0.0, peak - baseline),
        "pool_mb": images.numel() * images.element_size() / 2**20,
        "seconds": seconds,
        "images_per_s": n_pool / seconds,
        "method": "hwm_reset" if exact else "maxrss",
        "rss_after_batch_mb": [t[0] for t in trace],
        "peak_after_batch_mb": [t[1] for t in trace],
    }


def memory_run(key: str, n_pool: int, batch: int, streamed: bool, seed: int, threads: int | None) -> dict:
    """:func:`memory_child` in a fresh interpreter."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", key, str(n_pool), str(batch),
           "1" if streamed else "0", "--seed", str(seed)]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"  {key} pool {n_pool} ({'streamed' if streamed else 'one batch'}): peak +{row['peak_mb']:.1f} MB, "
        f"{row['images_per_s']:.1f} images/s")
    return row


def plan(args: argparse.Namespace) -> dict[str, dict]:
    """Batch size, throughput pool and memory batch per model."""
    out = {}
    for key in args.models:
        if key == "vgg":
            out[key] = {"batch": 64, "n_images": 256 if args.quick else 512, "mem_batch": 64}
        else:  # 224 px on 2 cores
            out[key] = {"batch": args.tv_batch, "n_images": 2 * args.tv_batch, "mem_batch": args.tv_batch}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="VGG-like model only (under a minute)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5; 3 with --quick; 224 px: <= 3)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None,
                        help="models (default: all; vgg with --quick)")
    parser.add_argument("--tv-batch", type=int, default=4, help="batch size for the 224-px models (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "N_POOL", "BATCH", "STREAMED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    if args.models is None:
        args.models = ["vgg"] if args.quick else ["vgg", "vgg16", "resnet101"]
    if args.reps < 1 or args.tv_batch < 1:
        parser.error("--reps and --tv-batch must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        key, n_pool, batch, streamed = args.child
        row = memory_child(key, int(n_pool), int(batch), streamed == "1", args.seed)
        sys.stdout.write(json.dumps(row) + "\n")
        return None

    t0 = time.perf_counter()
    env = environment()
    records, memory = [], []
    for key, cfg in plan(args).items():
        log(f"{key}: throughput ...")
        reps = args.reps if key == "vgg" else min(args.reps, 3)
        records.append(throughput(key, cfg["batch"], cfg["n_images"], reps, args.seed))
        log(f"{key}: memory while streaming ...")
        for factor in POOL_FACTORS + ((20,) if key == "vgg" else ()):
            row = memory_run(key, factor * cfg["mem_batch"], cfg["mem_batch"], True, args.seed, args.threads)
            memory.append({"factor": factor, **row})
        if key == "vgg":
            for factor in POOL_FACTORS:
                row = memory_run(key, factor * cfg["mem_batch"], cfg["mem_batch"], False, args.seed, args.threads)
                memory.append({"factor": factor, **row})

    print("Importance extraction vs a plain forward + backward (images/s, medians)")
    print(fmt_table(
        ["model", "px", "batch", "images", "importance", "fwd+bwd", "forward", "ratio fwd+bwd", "ratio fwd",
         "imp MB", "fwd+bwd MB"],
        [[r["model"], r["image_size"], r["batch_size"], r["n_images"], r["importance_images_per_s"],
          r["fwd_bwd_images_per_s"], r["forward_images_per_s"], r["ratio_to_fwd_bwd"], r["ratio_to_forward"],
          r["importance_peak_mb"], r["fwd_bwd_peak_mb"]] for r in records]))
    for key in args.models:
        rows = [m for m in memory if m["model"] == key and m["streamed"]]
        biggest = max(rows, key=lambda m: m["n_pool"])
        print(f"\n{key}: memory above baseline after each batch, streaming {biggest['n_pool']} images "
              f"in batches of {biggest['batch_size']} (resident / peak so far, MB)")
        print("  " + " ".join(f"{r:g}/{p:g}" for r, p in zip(biggest["rss_after_batch_mb"],
                                                              biggest["peak_after_batch_mb"], strict=True)))
    print("\nPeak memory above baseline while extracting, by pool size (fresh process each)")
    print(fmt_table(
        ["model", "batch", "pool", "x batch", "streamed", "peak MB", "pool MB", "s", "images/s"],
        [[m["model"], m["batch_size"], m["n_pool"], m["factor"], m["streamed"], m["peak_mb"], m["pool_mb"],
          m["seconds"], m["images_per_s"]] for m in memory]))

    peak_mb: dict[str, dict[str, float]] = {}
    growth: dict[str, float] = {}
    growth_4_10: dict[str, float] = {}
    for key in args.models:
        rows = {m["factor"]: m["peak_mb"] for m in memory if m["model"] == key and m["streamed"]}
        peak_mb[key] = {f"{f}x": round(v, 2) for f, v in rows.items()}
        growth[key] = round(rows[10] / max(rows[1], 1e-9), 3)
        growth_4_10[key] = round(rows[10] / max(rows[4], 1e-9), 3)
    unstreamed = {m["factor"]: m["peak_mb"] for m in memory if not m["streamed"]}
    ratios = {r["model"]: round(r["ratio_to_fwd_bwd"], 3) for r in records}
    result = {
        "benchmark": "importance",
        **env,
        "quick": args.quick,
        "reps": args.reps,
        "ratio_to_fwd_bwd": min(ratios.values()),
        "ratio_to_fwd_bwd_by_model": ratios,
        "ratio_to_fwd_bwd_best_by_model": {r["model"]: round(r["ratio_to_fwd_bwd_best"], 3) for r in records},
        "target_ratio": TARGET_RATIO,
        "target_met": min(ratios.values()) >= TARGET_RATIO,
        "peak_mb": peak_mb,
        "memory_growth_10x": max(growth.values()),
        "memory_growth_10x_by_model": growth,
        "memory_growth_4x_to_10x_by_model": growth_4_10,
        "unstreamed_peak_mb": {f"{f}x": round(v, 2) for f, v in unstreamed.items()},
        "unstreamed_growth_10x": round(unstreamed[10] / max(unstreamed[1], 1e-9), 3) if unstreamed else None,
        "records": records,
        "memory": memory,
        "seconds_total": round(time.perf_counter() - t0, 1),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
