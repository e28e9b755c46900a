"""The run a server serves, under load: predictions from many threads while classes are taught
all succeed and see whole runs, the runs on disk stay whole, and the images kept are bounded."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from niwt.rundir import verify_run
from niwt.runs import load_run
from niwt.serve.server import RunServer, ServeOptions
from niwt.serve.session import ImageGone, Session
from tests.serve._helpers import Client, shape_png

CLIENTS = 6
"""Threads sending predictions at once (bounded: the loopback, a few seconds)."""


def test_predictions_from_many_threads_while_classes_are_taught(tmp_path, small_run_dir):
    source = Path(shutil.copytree(small_run_dir, tmp_path / "run"))
    with RunServer(source, ServeOptions(port=0, read_dataset=False)) as server:
        client = Client(server)
        ids = [client.upload(shape_png(seed), f"{seed}.png")[1]["id"] for seed in range(3)]
        stop = threading.Event()
        results: list[tuple[int, int]] = []

        def predict(worker: int) -> None:
            deadline = time.monotonic() + 60  # bounded in time as in number
            for i in range(200):
                if (stop.is_set() and i >= 3) or time.monotonic() > deadline:
                    return
                status, body = client.json("POST", "/api/rank", {"ids": [ids[(worker + i) % 3]], "top_k": 20})
                results.append((status, len(body["images"][0]["top"]) if status == 200 else -1))

        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(predict, w) for w in range(CLIENTS)]
            for name in ("taught-one", "taught-two"):
                status, change = client.json("POST", "/api/teach", {"name": name, "attributes": {"shape:disc": 0.5}})
                assert status == 200, change
            stop.set()
            for future in futures:
                future.result()
        assert len(results) >= 3 * CLIENTS and all(status == 200 for status, _ in results)
        assert {n for _, n in results} <= {11, 12, 13}  # a whole run each time: before, between, after
    for path in (source, tmp_path / "run-taught"):
        verify_run(path)
    assert load_run(tmp_path / "run-taught").taught_classes == ("taught-one", "taught-two")
    assert load_run(source).taught_classes == ()


def test_the_images_kept_are_bounded_and_a_gone_one_is_named(small_run_dir):
    session = Session(load_run(small_run_dir), max_images=2, read_dataset=False)
    held = [session.add_image(shape_png(i), f"{i}.png") for i in range(3)]
    assert [h.id for h in session.images()] == [held[1].id, held[2].id]
    with pytest.raises(ImageGone, match="keeps the last 2 images"):
        session.image(held[0].id)
    with pytest.raises(ImageGone):
        session.image(["not", "an", "id"])
    assert session.image(held[2].id).tensor.shape == (3, 32, 32)


def test_a_file_name_is_only_a_label(small_run_dir):
    session = Session(load_run(small_run_dir), read_dataset=False)
    held = session.add_image(shape_png(), "../../etc/passwd\n\x00" + "x" * 500)
    assert held.name.startswith("../../etc/passwd") and "\n" not in held.name and "\x00" not in held.name
    assert len(held.name) == 200
    assert sorted(p.name for p in small_run_dir.parent.iterdir()) == ["run"]
