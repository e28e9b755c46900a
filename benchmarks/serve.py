"""``niwt serve`` measured: latency through the server (HTTP on the loopback) against the same
calls in Python, load while a class is taught, and what each bad input gets.

On a copy of a finished run (``--run``, default ``runs/demo``; ``--quick``: a tiny run trained here),
in one process:

* **predict with overlay, per image**: ``POST /api/images`` (decode, prepare, predict, explain,
  two PNGs, JSON) against ``LoadedRun.predict`` + the in-memory explanation
  (:func:`niwt.report.explained.explain_tensors`) of the same prepared image, and against the
  server's own work done in-process without HTTP (``Session.add_image`` + ``Session.rank``);
  ``POST /api/explain`` (another class's map) against ``explain_tensors`` alone;
* **teach, per class**: ``POST /api/teach`` (the first writes a new run beside the source, the
  next ones replace it) against ``LoadedRun.teach`` + ``.save`` to a new folder;
* **load**: ``--clients`` threads sending ``POST /api/rank`` on the loopback for ``--seconds``
  alone, then again while ``--teach`` classes are taught through the server; every request's
  status and latency, and afterwards every run directory checked whole (``verify_run``,
  ``load_run``) and the source's files unchanged;
* **bad input**: each tried through the API, with its status, its message, whether the server
  answered the next request and whether every file of the run was unchanged (an empty
  description on a tiny text-knowledge run trained here, 3 s).

    python benchmarks/serve.py [--run runs/demo] [--images 12] [--reps 3] [--classes 6] [--clients 6]
                               [--seconds 8] [--threads 1] [--quick]

Repetitions alternate the paths compared. Tables go to stdout (markdown), progress to stderr, and
the last line of stdout is one JSON object. The test helpers (``tests/serve/_helpers.py``) make the
images, good and bad, and the client. Times are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import environment, log  # noqa: E402


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return {"median_ms": 1000 * statistics.median(values), "p90_ms": 1000 * p90, "n": len(values)}


def _images(n: int) -> list[bytes]:
    """``n`` renderings of shapes-world objects (96 px PNGs), varied in shape, colour and pattern."""
    import numpy as np
    from PIL import Image

    from niwt.data.shapes import render_shape
    from tests.serve._helpers import png

    shapes, colours, patterns = ("disc", "square", "triangle", "cross"), ("yellow", "red", "blue", "green"), \
        ("stripes", "solid", "dots")
    out = []
    for i in range(n):
        image, _ = render_shape(shapes[i % 4], colours[(i // 4) % 4], patterns[i % 3], "large", np.random.default_rng(i))
        out.append(png(np.asarray(Image.fromarray(image).resize((96, 96), Image.NEAREST))))
    return out


def _lessons(run, k: int):
    """``k`` classes to teach the run: attribute values within the run's ranges, or descriptions."""
    from niwt.runs import Lesson

    if run.encoder.source != "attributes":
        words = ["striped yellow disc", "dotted green star", "checkered red square", "solid blue cross",
                 "striped magenta triangle", "dotted orange diamond"]
        return [Lesson(f"bench-{i}", description=f"a large {words[i % len(words)]}") for i in range(k)]
    names, high = list(run.encoder.names), list(run.encoder.high) or [1.0] * len(run.encoder.names)
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(name.split(":", 1)[0], []).append(j)
    out = []
    for i in range(k):
        values = {names[g[(i * (n + 1)) % len(g)]]: round(min(0.9, high[g[(i * (n + 1)) % len(g)]]), 4)
                  for n, g in enumerate(groups.values())}
        out.append(Lesson(f"bench-{i}", attributes=values))
    return out


def _payload(lesson) -> dict:
    return lesson.to_dict()


def latency(run_dir: Path, work: Path, images: list[bytes], reps: int, k: int) -> dict:
    """Predict with overlay and teach, through the server and in Python."""
    from niwt.report.explained import explain_tensors
    from niwt.runs import load_run
    from niwt.serve.server import RunServer, ServeOptions
    from niwt.serve.session import Session
    from tests.serve._helpers import Client

    run = load_run(run_dir)
    session = Session(run, read_dataset=False)  # the server's work without HTTP (its images, its PNGs)
    prepare = run.image_transform().build()
    from niwt.serve.images import decode_image

    tensors = [prepare(decode_image(data, "x").image)[None] for data in images]
    times: dict[str, list[float]] = {k_: [] for k_ in ("python", "in_process", "http", "python_explain",
                                                       "http_explain")}
    with RunServer(run_dir, ServeOptions(port=0, read_dataset=False)) as server:
        client = Client(server)
        client.upload(images[0], "warm.png")  # the first request pays for lazy imports: not counted
        session.rank(session.add_image(images[0], "warm.png"))
        explain_tensors(run, tensors[0], [0])
        for rep in range(reps):
            for i, (data, x) in enumerate(zip(images, tensors)):
                order = [0, 1, 2] if (rep + i) % 2 == 0 else [2, 1, 0]
                for path in order:
                    start = time.perf_counter()
                    if path == 0:
                        prediction = run.predict(x, top_k=5)[0]
                        explain_tensors(run, x, [run.row_of(prediction.classes[0])])
                        times["python"].append(time.perf_counter() - start)
                    elif path == 1:
                        session.rank(session.add_image(data, f"{i}.png"))
                        times["in_process"].append(time.perf_counter() - start)
                    else:
                        status, result = client.upload(data, f"{i}.png")
                        assert status == 200, result
                        times["http"].append(time.perf_counter() - start)
                        last = result
                other = run.row_names[(rep + i) % len(run.row_names)]
                start = time.perf_counter()
                explain_tensors(run, x, [run.row_of(other)])
                times["python_explain"].append(time.perf_counter() - start)
                start = time.perf_counter()
                status, answer = client.json("POST", "/api/explain", {"id": last["id"], "class": other})
                assert status == 200, answer
                times["http_explain"].append(time.perf_counter() - start)
        log(f"predict: {len(times['http'])} images through the server")
        lessons = _lessons(run, k)
        teach: dict[str, list[float]] = {"python_teach": [], "python_save": [], "python": [], "http": [],
                                         "http_server_teach": [], "http_server_save": []}
        steps: dict[str, list[int]] = {"python": [], "http": []}
        taught = run  # both paths teach the same classes in the same order, each to the run taught so far
        for i, lesson in enumerate(lessons):  # alternate which path goes first
            for path in ((0, 1) if i % 2 == 0 else (1, 0)):
                if path == 0:
                    start = time.perf_counter()
                    changed = taught.teach(lesson)
                    middle = time.perf_counter()
                    taught = changed.save(work / f"python-taught-{i}")
                    end = time.perf_counter()
                    teach["python_teach"].append(middle - start)
                    teach["python_save"].append(end - middle)
                    teach["python"].append(end - start)
                    steps["python"].append(changed.events[-1].steps)
                else:
                    start = time.perf_counter()
                    status, change = client.json("POST", "/api/teach", _payload(lesson))
                    assert status == 200, change
                    teach["http"].append(time.perf_counter() - start)
                    teach["http_server_teach"].append(change["seconds"])
                    teach["http_server_save"].append(change["saved_seconds"])
                    steps["http"].append(change["steps"])
        log(f"teach: {k} classes each way")
    return {"predict": {name: _ms(v) for name, v in times.items()},
            "teach": {name: _ms(v) for name, v in teach.items()}, "teach_steps": steps,
            "run": {"classes": len(run.row_names), "image_size": run.info.image_size, "arch": run.config.model.arch,
                    "knowledge": run.encoder.source}}


def _predict_until(client, ids: list[str], w: int, stop: threading.Event, records: list, lock: threading.Lock,
                   bound: float) -> None:
    """One client thread of the load: ``POST /api/rank`` (the top 20 classes) until told to stop,
    at least twice, and never longer than ``bound`` seconds or 10,000 requests."""
    deadline = time.monotonic() + bound
    i = 0
    while time.monotonic() < deadline and i < 10_000 and not (stop.is_set() and i >= 2):
        start = time.perf_counter()
        try:
            status, body = client.json("POST", "/api/rank", {"ids": [ids[(w + i) % len(ids)]], "top_k": 20})
            n = body["images"][0].get("classes", 0) if status == 200 else 0  # the run's classes when it answered
        except OSError as err:
            status, n = repr(err), 0
        with lock:
            records.append((status, time.perf_counter() - start, n, start))
        i += 1


def load(run_dir: Path, images: list[bytes], clients: int, seconds: float, n_teach: int) -> dict:
    """Concurrent predictions alone, then while classes are taught; every run directory checked after."""
    from niwt.rundir import verify_run
    from niwt.runs import load_run
    from niwt.serve.server import RunServer, ServeOptions
    from tests.serve._helpers import Client, fingerprint

    before = fingerprint(run_dir)
    phases: dict[str, dict] = {}
    with RunServer(run_dir, ServeOptions(port=0, read_dataset=False)) as server:
        client = Client(server)
        ids = [client.upload(data, f"{i}.png")[1]["id"] for i, data in enumerate(images[:4])]
        lessons = _lessons(server.session.run, n_teach + 2)[2:]
        for phase in ("alone", "while teaching"):
            stop, records, lock = threading.Event(), [], threading.Lock()
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                futures = [pool.submit(_predict_until, client, ids, w, stop, records, lock, 4 * seconds)
                           for w in range(clients)]
                changes = []
                window = (0.0, 0.0)
                if phase == "alone":
                    time.sleep(seconds)
                else:
                    window = (time.perf_counter(), 0.0)
                    for lesson in lessons:
                        status, change = client.json("POST", "/api/teach", _payload(lesson))
                        changes.append((status, change))
                    window = (window[0], time.perf_counter())
                    time.sleep(max(0.0, seconds - (time.perf_counter() - started)))
                stop.set()
                for future in futures:
                    future.result()
            wall = time.perf_counter() - started
            latencies = [t for s, t, *_ in records if s == 200]
            during = [t for s, t, _, at in records if s == 200 and window[0] <= at <= window[1]]
            phases[phase] = {"requests": len(records), "errors": sum(r[0] != 200 for r in records),
                             "wall_s": wall, "per_s": len(records) / wall, **_ms(latencies),
                             "max_ms": 1000 * max(latencies), "class_counts": sorted({r[2] for r in records}),
                             "during_teach": {"seconds": window[1] - window[0], **(_ms(during) if during else {}),
                                              "max_ms": 1000 * max(during) if during else None},
                             "teach": [{"status": s, "seconds": c.get("seconds"), "saved_s": c.get("saved_seconds"),
                                        "saved_to": c.get("saved_to")} for s, c in changes]}
            log(f"load {phase}: {len(records)} requests, {phases[phase]['errors']} errors")
        saved = server.session.saved_to
    checks = {}
    for path in [run_dir] + ([saved] if saved else []):
        verify_run(path)
        checks[str(path)] = {"whole": True, "classes": len(load_run(path).row_names),
                             "taught": list(load_run(path).taught_classes)}
    after = fingerprint(run_dir)
    source_unchanged = {k: v for k, v in after.items() if k != "<beside>"} == {
        k: v for k, v in before.items() if k != "<beside>"}
    return {"clients": clients, "seconds": seconds, "phases": phases, "runs": checks,
            "source_unchanged": source_unchanged}


def bad_inputs(run_dir: Path, text_dir: Path) -> list[dict]:
    """Each bad input through the API: status, message, the server's next answer, the run's files."""
    from niwt.serve.server import RunServer, ServeOptions
    from tests.serve._helpers import Client, fingerprint, huge_png, truncated_png

    rows = []
    with RunServer(run_dir, ServeOptions(port=0, read_dataset=False)) as server, \
            RunServer(text_dir, ServeOptions(port=0, read_dataset=False)) as text_server:
        client, text_client = Client(server), Client(text_server)
        run = server.session.run
        attribute = run.encoder.names[0]
        cases = [
            ("not an image (a text file)", client, lambda c: c.upload(b"just some text, not a picture\n", "notes.txt")),
            ("a truncated PNG", client, lambda c: c.upload(truncated_png(), "cut.png")),
            ("a 20,000 x 20,000 PNG (a real one, 1 bit per pixel, " + f"{len(huge_png()) // 1000} KB)", client,
             lambda c: c.upload(huge_png(), "huge.png")),
            ("a 50 MB body", client, lambda c: _raw(c, b"\x00" * (50 * 1024 * 1024))),
            ("no token", client, lambda c: c.json("GET", "/api/state", token=False)),
            ("no token, the page", client, lambda c: _text(c.request("GET", "/", token=False))),
            ("a wrong token", client, lambda c: c.json("POST", "/api/teach", {"name": "x", "attributes": {
                attribute: 0.5}}, token="wrong-token")),
            ("an empty description (a text-knowledge run)", text_client,
             lambda c: c.json("POST", "/api/teach", {"name": "new-class", "description": ""})),
            ("a name with '/'", client, lambda c: c.json("POST", "/api/teach", {"name": "birds/crows", "attributes": {
                attribute: 0.5}})),
            ("a name '..'", client, lambda c: c.json("POST", "/api/teach", {"name": "..", "attributes": {
                attribute: 0.5}})),
            ("a name that is already a class", client, lambda c: c.json("POST", "/api/teach", {
                "name": run.row_names[-1], "attributes": {attribute: 0.5}})),
            ("an unknown attribute", client, lambda c: c.json("POST", "/api/teach", {"name": "x", "attributes": {
                attribute + "x": 0.5}})),
        ]
        for label, who, call in cases:
            folder = run_dir if who is client else text_dir
            before = fingerprint(folder)
            status, body = call(who)
            message = body.get("error") if isinstance(body, dict) else str(body).strip()
            up = who.json("GET", "/api/state")[0] == 200
            rows.append({"input": label, "status": status, "message": message, "server_up": up,
                         "run_unchanged": fingerprint(folder) == before})
    return rows


def _raw(client, body: bytes):
    status, _, data = client.request("POST", "/api/images?name=big.png", body,
                                     {"Content-Type": "application/octet-stream"})
    return status, json.loads(data)


def _text(answer):
    status, _, data = answer
    return status, data.decode()


def _train(out: Path, text: bool) -> Path:
    from niwt.pipeline.commands import run_to_dir
    from niwt.pipeline.presets import demo_config, quick_config

    config = quick_config(demo_config(0))
    if text:
        config = replace(config, knowledge=replace(config.knowledge, source="text"))
    run_to_dir(config, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished run (copied; default: runs/demo)")
    parser.add_argument("--images", type=int, default=12, help="images for the predict latency (default: 12)")
    parser.add_argument("--reps", type=int, default=3, help="passes over the images (default: 3)")
    parser.add_argument("--classes", type=int, default=6, help="classes taught each way (default: 6)")
    parser.add_argument("--clients", type=int, default=6, help="threads sending predictions at once (default: 6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each load phase (default: 8)")
    parser.add_argument("--teach", type=int, default=2, help="classes taught during the load (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1; the machine is shared)")
    parser.add_argument("--quick", action="store_true", help="a tiny run trained here instead of --run (a smoke test)")
    args = parser.parse_args()

    import logging

    import torch

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    torch.set_num_threads(args.threads)
    env = {**environment(), "cpu": _cpu(), "command": "python benchmarks/serve.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="niwt-serve-bench-") as tmp:
        work = Path(tmp)
        if args.quick:
            source = _train(work / "source", text=False)
        else:
            if not (args.run / "manifest.json").is_file():
                raise SystemExit(f"{args.run} is not a finished run: run `niwt demo --out {args.run}` first, or --quick")
            source = Path(shutil.copytree(args.run, work / "source", ignore=shutil.ignore_patterns("*-taught*")))
        images = _images(args.images)
        log("latency ...")
        timing = latency(source, work, images, args.reps, args.classes)
        log("load ...")
        (work / "load").mkdir()
        load_source = Path(shutil.copytree(source, work / "load" / "run"))
        loaded = load(load_source, images, args.clients, args.seconds, args.teach)
        log("bad input ...")
        text_dir = _train(work / "text", text=True)
        bad = bad_inputs(source, text_dir)
    result = {"benchmark": "serve", **env, "latency": timing, "load": loaded, "bad_inputs": bad}
    print(report(result))
    print(json.dumps(result))


def report(r: dict) -> str:
    """The markdown tables of a result."""
    p, t = r["latency"]["predict"], r["latency"]["teach"]
    run = r["latency"]["run"]
    base = p["python"]["median_ms"]
    lines = ["# niwt serve: latency, load and bad input", "",
             f"`{r['command']}`, run on {r['date']} on {r['cpu_count']} cores of an {r['cpu']} CPU (Python "
             f"{r['python']}, torch {r['torch']}, {r['threads']} torch thread(s); load average "
             f"{r['loadavg_start'][0]} at the start: the machine was shared). The run: {run['classes']} classes, "
             f"{run['arch']} at {run['image_size']} px, {run['knowledge']} knowledge.", "",
             "## Predict with overlay, per image", "",
             "| path | median ms | p90 ms | n | x Python |", "| --- | ---: | ---: | ---: | ---: |"]
    names = {"python": "Python: `LoadedRun.predict` + `explain_tensors` (prepared image)",
             "in_process": "the server's work in-process: decode, prepare, predict, explain, 2 PNGs",
             "http": "server: `POST /api/images` on the loopback",
             "python_explain": "Python: `explain_tensors` for another class",
             "http_explain": "server: `POST /api/explain` for another class"}
    for key, label in names.items():
        m = p[key]
        ref = base if not key.endswith("explain") else p["python_explain"]["median_ms"]
        lines.append(f"| {label} | {m['median_ms']:.1f} | {m['p90_ms']:.1f} | {m['n']} | {m['median_ms'] / ref:.2f} |")
    lines += ["", "## Teach, per class", "", "| path | median ms | p90 ms | n | x Python |",
              "| --- | ---: | ---: | ---: | ---: |"]
    names = {"python_teach": "Python: `LoadedRun.teach`", "python_save": "Python: `.save` (a new run)",
             "python": "Python: teach + save", "http_server_teach": "server: teach (on a copy of the model)",
             "http_server_save": "server: save (a new run, then in place)",
             "http": "server: `POST /api/teach` on the loopback, in all"}
    for key, label in names.items():
        m = t[key]
        lines.append(f"| {label} | {m['median_ms']:.1f} | {m['p90_ms']:.1f} | {m['n']} | "
                     f"{m['median_ms'] / t['python']['median_ms']:.2f} |")
    steps = r["latency"]["teach_steps"]
    lines += ["", f"Transfer steps of each class: {steps['python']} in Python, {steps['http']} through the server "
              "(the same classes, in the same order, each taught to the run as taught so far; a save writes the "
              "whole run, its stages included: Python each time a new folder, the server a new run first and "
              "then that run in place)."]
    ld = r["load"]
    lines += ["", f"## Load: {ld['clients']} threads of `POST /api/rank` on the loopback", "",
              "| phase | requests | errors | per s | median ms | p90 ms | max ms | the run's classes, as answered |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for phase, m in ld["phases"].items():
        lines.append(f"| {phase} | {m['requests']} | {m['errors']} | {m['per_s']:.1f} | {m['median_ms']:.1f} | "
                     f"{m['p90_ms']:.1f} | {m['max_ms']:.1f} | {m['class_counts']} |")
    teach = ld["phases"]["while teaching"]["teach"]
    during = ld["phases"]["while teaching"]["during_teach"]
    if during.get("n"):
        lines += ["", f"While the classes were being taught ({during['seconds']:.2f} s): {during['n']} requests "
                  f"answered, median {during['median_ms']:.1f} ms, p90 {during['p90_ms']:.1f} ms, max "
                  f"{during['max_ms']:.1f} ms."]
    lines += ["", "Taught during the second phase: " + "; ".join(
        f"{c['status']} in {c['seconds']:.2f} s + {c['saved_s']:.2f} s saving" for c in teach) + ". Afterwards: "
        + "; ".join(f"{Path(k).name}: whole, {v['classes']} classes, taught {v['taught']}" for k, v in ld["runs"].items())
        + f"; the source's files unchanged: {ld['source_unchanged']}.", "",
        "## Bad input, each through the API", "",
        "| input | status | message | next request answered | run unchanged |", "| --- | ---: | --- | --- | --- |"]
    for row in r["bad_inputs"]:
        message = row["message"].replace("|", "\\|")
        lines.append(f"| {row['input']} | {row['status']} | {message} | {row['server_up']} | {row['run_unchanged']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
