"""Random sequences of niwt's own commands on a copy of a small run, the run checked after every step.

A hypothesis rule-based state machine applies ``teach`` and ``forget`` (in place, or into a new
folder), ``explain`` (into the run, or a folder outside it), ``predict --explain``, ``report`` and
the deletion of what those wrote, in any order. After every step:

* the run loads, every file its manifest lists matches its checksum, and every other file in its
  folder is one a command recorded writing about it;
* ``predict`` answers, with probabilities over every class the run has that sum to 1;
* the classes are the ones the sequence taught and forgot;
* nothing was written outside the run's folder but the folders the steps chose;
* no command was refused: none may be blocked by what another niwt command wrote.

Settings (:data:`SETTINGS`): 20 sequences of up to 12 steps each, no example database (nothing is
written into the repository).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from PIL import Image

from niwt.cli import main
from niwt.rundir import owned_outputs, read_manifest, verify_run
from niwt.rundir.layout import EXPLAIN, MANIFEST, OUTPUTS, PLOTS, REPORT
from niwt.runs import load_run

SETTINGS = settings(max_examples=20, stateful_step_count=12, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(24 + seed, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


class RunLife(RuleBasedStateMachine):
    """One run, changed and described by niwt's commands in a random order."""

    source: Path  # the small finished run every sequence starts from (set by the test)

    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="niwt-life-"))
        self.run = Path(shutil.copytree(self.source, self.root / "R"))
        self.images = [_image(self.root / "img" / f"{i}.png", i) for i in range(3)]
        self.images.append(_image(self.root / "img" / "again" / "0.png", 9))  # a second 0.png
        self.outside = self.root / "O"
        self.written = {"R", "img"}  # what may be in the root: the run, the images, the chosen outputs
        loaded = load_run(self.run)
        self.rows = list(loaded.row_names)
        self.seen = set(loaded.row_names[: len(loaded.fit_classes)])
        encoder = loaded.encoder
        self.attributes = ",".join(f"{n}={h:g}" for n, h in list(zip(encoder.names, encoder.high))[:2])
        self.steps = 0

    def teardown(self) -> None:
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)

    def _niwt(self, *argv: str | Path) -> None:
        self.steps += 1
        code = main([str(a) for a in argv])
        assert code == 0, f"step {self.steps}: niwt {' '.join(map(str, argv))} exited with {code}"

    def _new_folder(self, prefix: str) -> Path:
        out = self.root / f"{prefix}{self.steps}"
        self.written.add(out.name)
        return out

    @rule(in_place=st.booleans())
    def teach(self, in_place: bool) -> None:
        name = f"taught {self.steps}"
        where = ["--in-place"] if in_place else ["--out", self._new_folder("T")]
        self._niwt("teach", self.run, "--name", name, "--attributes", self.attributes, *where, "--quiet")
        if in_place:
            self.rows.append(name)

    @precondition(lambda self: len([r for r in self.rows if r not in self.seen]) > 1)
    @rule(data=st.data(), in_place=st.booleans())
    def forget(self, data, in_place: bool) -> None:
        name = data.draw(st.sampled_from([r for r in self.rows if r not in self.seen]))
        where = ["--in-place"] if in_place else ["--out", self._new_folder("F")]
        self._niwt("forget", self.run, "--name", name, *where, "--quiet")
        if in_place:
            self.rows.remove(name)

    @rule(picks=st.lists(st.integers(0, 3), max_size=2), outside=st.booleans())
    def explain(self, picks: list[int], outside: bool) -> None:
        where = ["--out", self.outside] if outside else []
        if outside:
            self.written.add(self.outside.name)
        images = [self.images[i] for i in picks] or ["--n", "2"]
        self._niwt("explain", self.run, *images, *where, "--quiet")

    @rule(pick=st.integers(0, 3), outside=st.booleans())
    def predict_and_explain(self, pick: int, outside: bool) -> None:
        where = ["--out", self.outside] if outside else []
        if outside:
            self.written.add(self.outside.name)
        self._niwt("predict", self.run, self.images[pick], "--explain", *where, "--quiet")

    @precondition(lambda self: self.steps < 40)
    @rule()
    def report(self) -> None:
        self._niwt("report", self.run, "--quiet")

    @rule(what=st.sampled_from([EXPLAIN, REPORT, PLOTS, OUTPUTS, "outside"]))
    def delete(self, what: str) -> None:
        path = self.outside if what == "outside" else self.run / what
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    @invariant()
    def the_run_is_whole(self) -> None:
        if not hasattr(self, "run"):
            return
        manifest = verify_run(self.run)  # every file it lists, against its checksum
        on_disk = {p.relative_to(self.run).as_posix() for p in self.run.rglob("*") if p.is_file()}
        about = owned_outputs(self.run)
        assert on_disk - {MANIFEST} <= set(manifest.files) | about, on_disk - set(manifest.files) - about
        assert set(manifest.files).isdisjoint(about)
        assert read_manifest(self.run) is not None

    @invariant()
    def it_predicts_over_its_classes(self) -> None:
        if not hasattr(self, "run"):
            return
        loaded = load_run(self.run)
        assert list(loaded.row_names) == self.rows
        (prediction,) = loaded.predict([self.images[0]], top_k=len(self.rows))
        assert sorted(prediction.classes) == sorted(self.rows)
        assert abs(sum(prediction.probabilities) - 1.0) < 1e-6

    @invariant()
    def nothing_else_was_written(self) -> None:
        if not hasattr(self, "root"):
            return
        assert {p.name for p in self.root.iterdir()} <= self.written
        for name in self.written - {"R", "img", self.outside.name}:
            if (self.root / name).exists():
                load_run(self.root / name)  # every run a step wrote elsewhere is whole too


def test_random_sequences_of_commands_never_damage_a_run(small_run_dir):
    RunLife.source = small_run_dir
    run_state_machine_as_test(RunLife, settings=SETTINGS)

