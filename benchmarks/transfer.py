"""Transfer steps per second: ``UnseenWeightOptimizer`` fast path vs reference path.

Both paths run in the same process, on the same model, pool images, targets and seed, and are
interleaved repetition by repetition. A step is timed by the optimisation loop itself
(``StepEnd.seconds``, handed to ``fit``'s ``on_step`` hook: drawing the batch of pairs, the loss, its
gradient and the Adam update); the fast path's one-off caching of the pool's activations
(``UnseenWeightOptimizer.pool_cache``) is timed on its own (``cache_seconds``). The same runs report
how far apart the two paths' float32 losses, gradients and learned rows are.

Whether the paths compute the same thing is decided in float64 (:func:`exactness`): the first
step's loss and gradient (same rows, same pairs) must agree to ``EXACT_RTOL`` there. In float32
the two paths round differently (other operations, other orders, other batch sizes); their gap is
reported beside each path's own float32 error against float64 (their sum bounds it).

Settings: the shapes VGG-like model (32 px), torchvision VGG16 and ResNet-101 (random weights,
224 px), each with 10 and 50 unseen classes; then a scaling table on the VGG-like model (pool size
and number of unseen classes).

Usage::

    python benchmarks/transfer.py             # full run
    python benchmarks/transfer.py --quick     # VGG-like model only, under a minute

Tables go to stdout, progress to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass, field

import torch
from _common import PeakMemory, emit, environment, fmt_table, log, median

from niwt.layers import eval_mode
from niwt.models import Backbone, create_model
from niwt.training import StepEnd
from niwt.transfer import MODES, PairSampler, UnseenWeightOptimizer, init_unseen_weights

# name used in the records -> (registry name, constructor kwargs, image side)
MODELS = {
    "vgg": ("vgg", {"width": 32, "hidden": 256, "image_size": 32}, 32),
    "vgg16": ("tv_vgg16", {"weights": "none"}, 224),
    "resnet101": ("tv_resnet101", {"weights": "none"}, 224),
}
N_SEEN = 30
TARGETS = {"vgg/10": 10.0, "vgg16/10": 20.0, "resnet101/10": 10.0}  # required fast/reference speedups
EXACT_RTOL = 1e-10  # float64: same rows, same pairs -> same loss and gradient to this (relative to their scale)
F32_RTOL = 1e-4  # float32: the gap reported as within_f32_rtol (informative: rounding can exceed it)
EXACT_PAIRS = 10  # pairs of the first batch checked in float64 (a float64 copy of the model runs them)


@dataclass
class Setting:
    model: str
    n_unseen: int
    batch_size: int
    n_pool: int
    fast_steps: int
    ref_steps: int
    fast_reps: int
    ref_reps: int


@dataclass
class FitRun:
    """What one timed ``fit`` gives back."""

    step_seconds: list[float]
    history: list[float]
    weights: list[torch.Tensor]  # weights[j]: the rows after j steps
    grads: list[torch.Tensor]  # grads[j]: the gradient of step j (taken at weights[j])
    cache_seconds: float | None
    cache: torch.Tensor | None
    peak_mib: float


@dataclass
class Record:
    model: str
    n_unseen: int
    image_size: int
    batch_size: int
    n_pool: int
    fast_steps_per_s: float
    reference_steps_per_s: float
    speedup: float
    fast_step_s: float
    reference_step_s: float
    speedup_best: float  # from the fastest step of each path: less sensitive to other load on the machine
    cache_seconds: float
    cache_mb: float
    fast_peak_mb: float
    reference_peak_mb: float
    max_abs_diff: float
    max_rel_diff: float
    grad_max_abs_diff: float
    grad_max_rel_diff: float
    loss_first_rel_diff: float
    loss_max_rel_diff: float
    compared_steps: int
    exact_pairs: int
    f64_loss_rel_diff: float
    f64_grad_rel_diff: float
    f32_loss_gap: float
    f32_grad_gap: float
    f32_grad_err_fast: float
    f32_grad_err_reference: float
    f32_loss_err_fast: float
    f32_loss_err_reference: float
    within_f32_rtol: bool
    match: bool
    verdict: str
    fast_steps_timed: int
    reference_steps_timed: int
    fast_step_samples: list[float] = field(default_factory=list)
    reference_step_samples: list[float] = field(default_factory=list)


def build_model(key: str, seed: int) -> Backbone:
    """The backbone ``key`` with random weights (seeded), in eval mode."""
    name, kwargs, _ = MODELS[key]
    torch.manual_seed(seed)
    return create_model(name, N_SEEN, **kwargs).eval()


def n_channels(model: Backbone) -> int:
    """Channels K of the importance layer (a 32-px probe is enough for every backbone here)."""
    with torch.no_grad():
        return int(model.forward_features(torch.zeros(1, 3, 32, 32)).shape[1])


def make_inputs(n_pool: int, n_unseen: int, side: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pool images ``[P, 3, side, side]`` and non-negative target importances ``[U, K]``."""
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(n_pool, 3, side, side, generator=gen)
    tau = torch.rand(n_unseen, channels, generator=gen)
    return pool, tau


def run_fit(model: Backbone, pool: torch.Tensor, tau: torch.Tensor, *, mode: str, steps: int, batch_size: int,
            seed: int, cache: torch.Tensor | None = None) -> FitRun:
    """One ``fit`` of exactly ``steps`` steps, timing each step.

    ``fit``'s ``on_step`` hook records each step's time, its gradient and the rows after it. With
    ``cache`` given, the fast path reuses those activations (same model, same pool) instead of
    computing them again; otherwise their computation is timed (and counted in the memory peak).
    """
    opt = UnseenWeightOptimizer(batch_size=batch_size, max_steps=steps, patience=steps + 1, mode=mode,
                                random_state=seed)
    seconds: list[float] = []
    after: list[torch.Tensor] = []  # after[j]: the rows after step j
    grads: list[torch.Tensor] = []  # grads[j]: the gradient of step j

    def record(end: StepEnd) -> None:
        seconds.append(end.seconds)
        grads.append(end.grads[0].detach().clone())
        after.append(end.params[0].detach().clone())

    cache_seconds = None
    with PeakMemory() as mem:
        if mode == "fast" and cache is None:
            start = time.perf_counter()
            cache = opt.pool_cache(model, pool)
            cache_seconds = time.perf_counter() - start
        opt.fit(model, pool, tau, cache=cache if mode == "fast" else None, on_step=record)
    if opt.n_steps_ != steps:
        raise RuntimeError(f"{mode} fit stopped after {opt.n_steps_} of {steps} steps")
    return FitRun(
        step_seconds=seconds,
        history=list(opt.history_),
        weights=[opt.init_weights_, *after],
        grads=grads,
        cache_seconds=cache_seconds,
        cache=cache if mode == "fast" else None,
        peak_mib=mem.extra_mib,
    )


def compare(fast: FitRun, ref: FitRun) -> dict:
    """How far apart the two paths' float32 fits are (informative; :func:`exactness` decides ``match``).

    The first step starts from the same rows on the same batch, so its loss and gradient differ by
    float32 rounding only. The rows learned after ``k`` steps (``max_abs_diff``) can differ by more:
    Adam divides each gradient component by its own running magnitude (plus ``eps=1e-8``), so a
    component whose gradient is ~1e-8, i.e. float32 rounding of terms that cancel, still moves by a
    sizeable fraction of ``lr``, by an amount set by that rounding.
    """
    k = min(len(fast.history), len(ref.history))
    wf, wr = fast.weights[k], ref.weights[k]
    diff = float((wf - wr).abs().max())
    scale = float(wr.abs().max())
    gf, gr = fast.grads[0], ref.grads[0]
    gdiff = float((gf - gr).abs().max())
    grel = gdiff / max(float(gr.abs().max()), 1e-30)
    hf, hr = torch.tensor(fast.history[:k], dtype=torch.float64), torch.tensor(ref.history[:k], dtype=torch.float64)
    rel = (hf - hr).abs() / hr.abs().clamp_min(1e-12)
    return {
        "compared_steps": k,
        "max_abs_diff": diff,
        "max_rel_diff": diff / max(scale, 1e-12),
        "grad_max_abs_diff": gdiff,
        "grad_max_rel_diff": grel,
        "loss_first_rel_diff": float(rel[0]),
        "loss_max_rel_diff": float(rel.max()),
    }


def _first_step(model: Backbone, images: torch.Tensor, tau: torch.Tensor, weight: torch.Tensor,
                cls: torch.Tensor, cache: torch.Tensor | None = None) -> dict[str, tuple[float, torch.Tensor]]:
    """Loss and gradient of one step on pairs ``(images[b], cls[b])`` in each mode, in the model's dtype
    (the fast path reads ``cache``, the images' cache rows, when given)."""
    dtype = model.classifier.weight.dtype
    opt = UnseenWeightOptimizer()  # the loss's settings (lam) of run_fit's optimisers
    problem = opt.prepare(model, images.to(dtype), tau.to(dtype), cache=cache)
    out = {}
    for mode in MODES:
        w = weight.to(dtype).clone().requires_grad_(True)
        with eval_mode(model):
            loss = opt.batch_loss(problem, w, torch.arange(cls.numel()), cls, mode=mode)
            (grad,) = torch.autograd.grad(loss, w)
        out[mode] = (float(loss.detach()), grad.detach().double())
    return out


def exactness(model: Backbone, pool: torch.Tensor, tau: torch.Tensor, batch_size: int, seed: int,
              cache: torch.Tensor | None = None, max_pairs: int = EXACT_PAIRS) -> dict:
    """Whether both paths compute the same loss and gradient, and what float32 does to them.

    The rows and pairs are those of a fit's first step (``init_unseen_weights`` and
    ``PairSampler`` drawn as ``fit`` draws them), limited to ``max_pairs`` pairs. Both paths run
    in float32 (on ``model``; the fast path on the timed fits' ``cache`` when given, so that with
    the whole batch checked its numbers are the fits' first step) and in float64 (on a copy).
    ``match``: the float64 losses agree to ``EXACT_RTOL`` relative and the float64 gradients to
    ``EXACT_RTOL`` times their largest entry.
    The float32 gap between the paths (``f32_*_gap``) is shown beside each path's float32 error
    against the float64 reference (``f32_*_err_*``, same scale): when the float64 results agree,
    the gap is at most the sum of the two errors, i.e. rounding.
    """
    gen = torch.Generator().manual_seed(seed)
    weight = init_unseen_weights(model.classifier.weight.detach(), tau.shape[0], "seen_centered", gen)
    idx, cls = next(iter(PairSampler(pool.shape[0], tau.shape[0], batch_size, gen)))
    idx, cls = idx[:max_pairs], cls[:max_pairs]
    f32 = _first_step(model, pool[idx], tau, weight, cls, None if cache is None else cache[idx])
    f64 = _first_step(copy.deepcopy(model).double(), pool[idx].double(), tau.double(), weight.double(), cls)
    true_loss, true_grad = f64["reference"]
    g_scale = max(float(true_grad.abs().max()), 1e-300)

    def loss_rel(a: float, b: float) -> float:
        return abs(a - b) / max(abs(true_loss), 1e-300)

    def grad_rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max()) / g_scale

    f64_loss, f64_grad = loss_rel(f64["fast"][0], true_loss), grad_rel(f64["fast"][1], true_grad)
    gap_loss, gap_grad = loss_rel(f32["fast"][0], f32["reference"][0]), grad_rel(f32["fast"][1], f32["reference"][1])
    same = f64_loss <= EXACT_RTOL and f64_grad <= EXACT_RTOL
    err = {mode: (loss_rel(f32[mode][0], true_loss), grad_rel(f32[mode][1], true_grad)) for mode in MODES}
    if not same:
        verdict = f"the paths differ: float64 loss {f64_loss:.1e}, gradient {f64_grad:.1e} apart"
    else:
        verdict = (f"same to {max(f64_loss, f64_grad):.0e} in float64; the float32 gap ({gap_grad:.1e} of the "
                   f"gradient's scale) is rounding: each path's own float32 error is "
                   f"{err['fast'][1]:.1e} (fast) and {err['reference'][1]:.1e} (reference)")
    return {
        "exact_pairs": int(idx.numel()),
        "f64_loss_rel_diff": f64_loss,
        "f64_grad_rel_diff": f64_grad,
        "f32_loss_gap": gap_loss,
        "f32_grad_gap": gap_grad,
        "f32_grad_err_fast": err["fast"][1],
        "f32_grad_err_reference": err["reference"][1],
        "f32_loss_err_fast": err["fast"][0],
        "f32_loss_err_reference": err["reference"][0],
        "within_f32_rtol": bool(gap_loss <= F32_RTOL and gap_grad <= F32_RTOL),
        "match": same,
        "verdict": verdict,
    }


def bench_setting(model: Backbone, s: Setting, seed: int, warmup: bool) -> Record:
    """Time both paths on one setting; fast and reference fits alternate."""
    side = MODELS[s.model][2]
    pool, tau = make_inputs(s.n_pool, s.n_unseen, side, n_channels(model), seed)
    if warmup:  # one-off costs (thread pools, oneDNN primitives) out of the timed runs
        run_fit(model, pool, tau, mode="fast", steps=1, batch_size=s.batch_size, seed=seed)
        run_fit(model, pool, tau, mode="reference", steps=1, batch_size=s.batch_size, seed=seed)
    fast_runs: list[FitRun] = []
    ref_runs: list[FitRun] = []
    cache = None
    for rep in range(max(s.fast_reps, s.ref_reps)):
        if rep < s.fast_reps:
            run = run_fit(model, pool, tau, mode="fast", steps=s.fast_steps, batch_size=s.batch_size, seed=seed,
                          cache=cache)
            cache = run.cache
            fast_runs.append(run)
            log(f"  {s.model}/{s.n_unseen} fast rep {rep}: median step {median(run.step_seconds):.4f} s"
                + (f", cache {run.cache_seconds:.2f} s" if run.cache_seconds is not None else ""))
        if rep < s.ref_reps:
            run = run_fit(model, pool, tau, mode="reference", steps=s.ref_steps, batch_size=s.batch_size, seed=seed)
            ref_runs.append(run)
            log(f"  {s.model}/{s.n_unseen} reference rep {rep}: median step {median(run.step_seconds):.4f} s")
    fast_steps = [t for r in fast_runs for t in r.step_seconds]
    ref_steps = [t for r in ref_runs for t in r.step_seconds]
    fast_s, ref_s = median(fast_steps), median(ref_steps)
    agreement = compare(fast_runs[0], ref_runs[0])
    exact = exactness(model, pool, tau, s.batch_size, seed, cache)
    log(f"  {s.model}/{s.n_unseen}: {exact['verdict']}")
    return Record(
        model=s.model, n_unseen=s.n_unseen, image_size=side, batch_size=s.batch_size, n_pool=s.n_pool,
        fast_steps_per_s=1.0 / fast_s, reference_steps_per_s=1.0 / ref_s, speedup=ref_s / fast_s,
        fast_step_s=fast_s, reference_step_s=ref_s, speedup_best=min(ref_steps) / min(fast_steps),
        cache_seconds=float(fast_runs[0].cache_seconds),
        cache_mb=cache.numel() * cache.element_size() / 2**20,
        fast_peak_mb=fast_runs[0].peak_mib, reference_peak_mb=max(r.peak_mib for r in ref_runs),
        fast_steps_timed=len(fast_steps), reference_steps_timed=len(ref_steps),
        fast_step_samples=[round(t, 5) for t in fast_steps], reference_step_samples=[round(t, 5) for t in ref_steps],
        **agreement, **exact,
    )


def plan(args: argparse.Namespace) -> list[Setting]:
    """The settings of this run."""
    settings = []
    for key in args.models:
        for u in args.n_unseen:
            if key == "vgg":
                settings.append(Setting(key, u, batch_size=64, n_pool=128,
                                        fast_steps=20 if args.quick else 30, ref_steps=3 if args.quick else 5,
                                        fast_reps=args.reps, ref_reps=args.reps))
            else:  # 224 px on 2 cores: one pair per class per step, a pool of two batches
                settings.append(tv_setting(key, u, args.tv_pairs_per_class, args))
    return settings


def tv_setting(key: str, n_unseen: int, pairs_per_class: int, args: argparse.Namespace,
               pool_factor: int | None = None, ref_steps: int | None = None) -> Setting:
    """A 224-px setting: ``pairs_per_class * n_unseen`` pairs per step; the reference runs once."""
    batch = n_unseen * pairs_per_class
    ref_steps = ref_steps or args.tv_ref_steps
    return Setting(key, n_unseen, batch_size=batch, n_pool=batch * (pool_factor or args.tv_pool_factor),
                   fast_steps=ref_steps + 2, ref_steps=ref_steps, fast_reps=args.reps, ref_reps=1)


def scaling(model: Backbone, quick: bool, seed: int) -> list[dict]:
    """Seconds per step on the VGG-like model as the pool and the number of unseen classes grow."""
    side, channels, batch = MODELS["vgg"][2], n_channels(model), 64
    pool_sizes, class_counts = (64, 256, 1024), (10, 50, 200)
    pool_all, _ = make_inputs(max(pool_sizes), 1, side, channels, seed)
    fast_steps, ref_steps = (8, 2) if quick else (20, 3)
    rows = []
    cases = [("pool", p, 10) for p in pool_sizes] + [("n_unseen", 256, u) for u in class_counts]
    for axis, n_pool, u in cases:
        pool = pool_all[:n_pool]
        tau = make_inputs(1, u, side, channels, seed + u)[1]
        fast = run_fit(model, pool, tau, mode="fast", steps=fast_steps, batch_size=batch, seed=seed)
        with_ref = not quick or (n_pool <= 256 and u <= 50)
        ref = None
        if with_ref:
            ref = run_fit(model, pool, tau, mode="reference", steps=ref_steps, batch_size=batch, seed=seed)
        row = {
            "axis": axis, "n_pool": n_pool, "n_unseen": u, "batch_size": batch,
            "fast_step_s": median(fast.step_seconds),
            "reference_step_s": median(ref.step_seconds) if ref else None,
            "speedup": median(ref.step_seconds) / median(fast.step_seconds) if ref else None,
            "cache_seconds": fast.cache_seconds,
            "cache_mb": fast.cache.numel() * fast.cache.element_size() / 2**20,
            "fast_peak_mb": fast.peak_mib,
            "reference_peak_mb": ref.peak_mib if ref else None,
        }
        if ref:
            row.update(compare(fast, ref))
            row.update(exactness(model, pool, tau, batch, seed, fast.cache))
        rows.append(row)
        log(f"  scaling {axis}: pool {n_pool}, U {u}: fast {row['fast_step_s']:.4f} s/step"
            + (f", reference {row['reference_step_s']:.4f} s/step" if ref else ""))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="VGG-like model only, fewer steps (under a minute)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions of each fit (default 3; 2 with --quick); the 224-px reference runs once")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None,
                        help="models to time (default: all; vgg with --quick)")
    parser.add_argument("--n-unseen", nargs="+", type=int, default=[10, 50], help="unseen-class counts")
    parser.add_argument("--tv-ref-steps", type=int, default=3,
                        help="reference steps per setting on the 224-px torchvision models (default 3)")
    parser.add_argument("--tv-pairs-per-class", type=int, default=1,
                        help="pairs per unseen class in a step on the 224-px models: batch = U x this (default 1)")
    parser.add_argument("--tv-pool-factor", type=int, default=2,
                        help="pool size in batches for the 224-px models (default 2)")
    parser.add_argument("--batch-sweep", nargs="*", type=int, default=None,
                        help="extra VGG16 U=10 runs with these pairs per class (default: 2 4; none with --quick)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 2 if args.quick else 3
    if args.models is None:
        args.models = ["vgg"] if args.quick else ["vgg", "vgg16", "resnet101"]
    if args.batch_sweep is None:
        args.batch_sweep = [] if args.quick or "vgg16" not in args.models else [2, 4]
    if min([args.reps, args.tv_ref_steps, args.tv_pool_factor, args.tv_pairs_per_class, *args.batch_sweep]) < 1:
        parser.error("--reps, --tv-ref-steps, --tv-pool-factor, --tv-pairs-per-class and --batch-sweep must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    env = environment()
    records: list[Record] = []
    sweep: list[Record] = []
    scaling_rows: list[dict] = []
    settings = plan(args)
    for key in dict.fromkeys(s.model for s in settings):
        log(f"building {key} ...")
        model = build_model(key, args.seed)
        for s in (s for s in settings if s.model == key):
            records.append(bench_setting(model, s, args.seed, warmup=(key == "vgg")))
        if key == "vgg16":
            for pairs in args.batch_sweep:
                log(f"VGG16, 10 unseen classes, {pairs} pairs per class ...")
                setting = tv_setting(key, 10, pairs, args, pool_factor=1, ref_steps=min(2, args.tv_ref_steps))
                sweep.append(bench_setting(model, setting, args.seed, warmup=False))
        if key == "vgg" and not args.no_scaling:
            log("scaling table (VGG-like) ...")
            scaling_rows = scaling(model, args.quick, args.seed)
        del model

    print("Transfer steps per second, fast vs reference (medians over timed steps)")
    print(fmt_table(
        ["model", "U", "px", "batch", "pool", "fast step/s", "ref step/s", "speedup", "best", "cache s", "cache MB",
         "fast MB", "ref MB", "f64 diff", "f32 gap", "f32 err", "max|dW|", "match"],
        [[r.model, r.n_unseen, r.image_size, r.batch_size, r.n_pool, r.fast_steps_per_s, r.reference_steps_per_s,
          r.speedup, r.speedup_best, r.cache_seconds, r.cache_mb, r.fast_peak_mb, r.reference_peak_mb,
          max(r.f64_loss_rel_diff, r.f64_grad_rel_diff), max(r.loss_first_rel_diff, r.grad_max_rel_diff),
          max(r.f32_grad_err_fast, r.f32_grad_err_reference), r.max_abs_diff, r.match]
         for r in records + sweep]))
    print(f"f64 diff: first-step loss and gradient of the two paths in float64, on up to {EXACT_PAIRS} pairs "
          f"(match: <= {EXACT_RTOL:g}); f32 gap: the timed fits' first-step loss and gradient; f32 err: the larger "
          "float32 error of one path against float64, the size of float32 rounding here (gradients relative to "
          "their largest entry)")
    if scaling_rows:
        print("\nScaling on the VGG-like model (batch 64): seconds per step")
        print(fmt_table(
            ["axis", "pool", "U", "fast s/step", "ref s/step", "speedup", "cache s", "cache MB", "fast MB", "ref MB"],
            [[r["axis"], r["n_pool"], r["n_unseen"], r["fast_step_s"], r["reference_step_s"], r["speedup"],
              r["cache_seconds"], r["cache_mb"], r["fast_peak_mb"], r["reference_peak_mb"]] for r in scaling_rows]))

    speedup = {f"{r.model}/{r.n_unseen}": round(r.speedup, 2) for r in records}
    targets_met = {k: speedup[k] >= v for k, v in TARGETS.items() if k in speedup}
    result = {
        "benchmark": "transfer",
        **env,
        "quick": args.quick,
        "reps": args.reps,
        "records": [asdict(r) for r in records],
        "speedup": speedup,
        "speedup_best": {f"{r.model}/{r.n_unseen}": round(r.speedup_best, 2) for r in records},
        "batch_sweep": [asdict(r) for r in sweep],
        "speedup_by_batch": {f"{r.model}/{r.n_unseen}/batch{r.batch_size}": round(r.speedup, 2)
                             for r in records + sweep if r.model == "vgg16" and r.n_unseen == 10},
        "targets": {k: v for k, v in TARGETS.items() if k in speedup},
        "targets_met": targets_met,
        "all_match": all(r.match for r in records + sweep) and all(r.get("match", True) for r in scaling_rows),
        "scaling": scaling_rows,
        "seconds_total": round(time.perf_counter() - t0, 1),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
