"""The run a server serves: its current state, the images on its page, and its changes.

One lock guards the model: a prediction or an explanation reads one consistent run, and a change
replaces the run only once it is saved. Teaching works on a copy of the model outside that lock, so
predictions go on while a class is taught; one change at a time (a second lock).

Every change goes through :meth:`LoadedRun.teach <niwt.runs.LoadedRun.teach>` /
:meth:`~niwt.runs.LoadedRun.forget` and :meth:`~niwt.runs.LoadedRun.save`, as ``niwt teach`` and
``niwt forget`` do: names, descriptions and attribute values are checked there, and the run is
written atomically, under the run lock, refused when the run on disk changed since it was read.
The first change of a session is saved as a new run beside the source (``RUN-taught``, ``-2`` ...),
the later ones replace that new run; with ``in_place`` each replaces the source itself. User text
never becomes a path: every path is the source's, or :meth:`~niwt.runs.LoadedRun.default_out` of it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niwt.errors import DataError, NIWTError, RunDirectoryError
from niwt.explain.names import NeuronName
from niwt.report.explained import Explained, explain_tensors, top_neurons
from niwt.report.html import png_data_uri
from niwt.report.run_report import given_knowledge, neuron_names
from niwt.rundir import layout
from niwt.runs import Lesson, LoadedRun, load_run
from niwt.serve.images import Upload, decode_image, upload_name

__all__ = ["SEEN", "UNSEEN", "TAUGHT", "MAX_IMAGES", "HeldImage", "Change", "Session"]

log = logging.getLogger(__name__)

SEEN, UNSEEN, TAUGHT = "seen", "unseen", "taught"
"""The kinds of a class: trained on its images, one of the run's unseen classes, taught since."""

MAX_IMAGES = 64
"""Images a session keeps for its page (the oldest is let go beyond)."""

TOP_NEURONS = 5
"""The most important neurons listed for an image and a class."""


class ImageGone(DataError):
    """An image id the session does not hold (never sent, or let go as the oldest of too many)."""


@dataclass(frozen=True, eq=False)
class HeldImage:
    """An image on the page: its id, its name (a label), its prepared tensor ``[3, H, W]`` and upload record."""

    id: str
    name: str
    tensor: torch.Tensor
    upload: Upload

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "width": self.upload.width, "height": self.upload.height,
                "format": self.upload.format, "mode": self.upload.mode, "notes": list(self.upload.notes)}


@dataclass(frozen=True)
class Change:
    """One teach or forget, saved: what changed, how long it took, and where the run was written."""

    action: str
    name: str
    seconds: float
    saved_seconds: float
    path: Path
    steps: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "class": self.name, "seconds": self.seconds,
                "saved_seconds": self.saved_seconds, "saved_to": str(self.path), "steps": self.steps,
                "notes": list(self.notes)}


class _Warnings(logging.Handler):
    """The warnings niwt logs in one thread while a change is made (an attribute value outside the
    run's range ...), so that the page says them too."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    handler = _Warnings()
    root = logging.getLogger("niwt")
    root.addHandler(handler)
    try:
        yield handler.messages
    finally:
        root.removeHandler(handler)


def _kind(run: LoadedRun, row: int, taught: set[str]) -> str:
    if row < len(run.fit_classes):
        return SEEN
    return TAUGHT if run.row_names[row] in taught else UNSEEN


def _named(run: LoadedRun) -> tuple[LoadedRun, list[NeuronName]] | None:
    """The run's neuron names, with the run they are of (None for a run without an inverse map)."""
    return (run, neuron_names(run)) if run.inverse is not None else None


def _from_vector(run: LoadedRun, name: str, k: int = 5) -> str:
    """A class's largest knowledge dimensions, named, when its description is not at hand."""
    if name not in run.class_names or not run.knowledge_names or run.knowledge_names[0].startswith("embedding:"):
        return ""
    row = np.asarray(run.knowledge[run.class_names.index(name)], dtype=np.float64)
    top = [i for i in np.argsort(-row, kind="stable")[:k] if row[i] > 0]
    return "its knowledge vector's largest: " + ", ".join(run.knowledge_names[i] for i in top) if top else ""


class Session:
    """A finished run served to one page: predictions and explanations of the images sent, and
    the run's changes, saved.

    Args:
        run: the run (as :func:`~niwt.runs.load_run` reads it).
        in_place: save every change into the run itself (default: a new run beside it).
        max_images: the images kept for the page (:data:`MAX_IMAGES`).
        read_dataset: read the run's dataset once for its classes' descriptions (when it is at hand).
    """

    def __init__(self, run: LoadedRun, *, in_place: bool = False, max_images: int = MAX_IMAGES,
                 read_dataset: bool = True) -> None:
        if run.info.in_features is not None:
            raise DataError(f"{run.path} was trained on pre-extracted features ({run.info.in_features} per image, "
                            f"model {run.config.model.arch!r}), not on images: it cannot look at a photo, so the "
                            "page has nothing to show. Serve a run of a network on images (niwt run with a "
                            "torchvision or timm model, or niwt adopt)")
        self.source = Path(run.path)
        self.in_place = in_place
        self.max_images = max_images
        self.saved_to: Path | None = None
        self.changes: list[Change] = []
        self._run = run
        self._model_lock = threading.Lock()
        self._change_lock = threading.Lock()
        self._images_lock = threading.Lock()
        self._images: OrderedDict[str, HeldImage] = OrderedDict()
        self._prepare = run.image_transform().build()
        self._names: tuple[LoadedRun, list[NeuronName]] | None = _named(run)
        self._dataset_given = self._read_given(run) if read_dataset else {}
        self._warm_up(run)

    def _warm_up(self, run: LoadedRun) -> None:
        """One prediction and explanation of a blank image, so that the first person's image does not
        pay for what is loaded on first use (the colour map, the PNG encoder)."""
        size = int(run.info.image_size or 32)
        blank = torch.zeros(1, 3, size, size)
        try:
            with self._model_lock:
                row = run.row_of(run.predict(blank, top_k=1)[0].classes[0])
                explain_tensors(run, blank, [row])[0].overlay()
        except (NIWTError, RuntimeError, ValueError) as err:  # the page will say what is wrong, on first use
            log.debug("warm-up skipped: %s", err)

    @staticmethod
    def _read_given(run: LoadedRun) -> dict[str, str]:
        try:
            data, _ = run.dataset()
        except (NIWTError, OSError) as err:
            log.warning("the run's dataset cannot be read (%s): the page shows the taught classes' descriptions "
                        "and the others' largest knowledge dimensions", err)
            return {}
        return given_knowledge(run, data, limit=400, every_class=True)

    @property
    def run(self) -> LoadedRun:
        """The run as it is now (the last change saved)."""
        with self._model_lock:
            return self._run

    # -- images --------------------------------------------------------------------------------

    def add_image(self, data: bytes, name: str = "image") -> HeldImage:
        """Decode an uploaded image, prepare it as the run's images were, and keep it for the page.

        Raises:
            DataError: an upload :func:`~niwt.serve.images.decode_image` refuses (said why); nothing is kept.
        """
        name = upload_name(name)
        upload = decode_image(data, name)
        tensor = self._prepare(upload.image)
        held = HeldImage(secrets.token_hex(8), name, tensor, upload)
        with self._images_lock:
            self._images[held.id] = held
            while len(self._images) > self.max_images:
                self._images.popitem(last=False)
        return held

    def image(self, image_id: object) -> HeldImage:
        """The image of id ``image_id``.

        Raises:
            ImageGone: an id the session does not hold.
        """
        with self._images_lock:
            held = self._images.get(image_id) if isinstance(image_id, str) else None
        if held is None:
            raise ImageGone(f"image {quote_id(image_id)} is not on the server (the server keeps the last "
                            f"{self.max_images} images, and forgets them when it stops): send it again")
        return held

    def images(self) -> list[HeldImage]:
        with self._images_lock:
            return list(self._images.values())

    # -- predictions and explanations ----------------------------------------------------------

    def rank(self, held: HeldImage, top_k: int = 5) -> dict[str, Any]:
        """The image's top classes (with their kinds) and the explanation of the first of them."""
        start = time.perf_counter()
        with self._model_lock:
            run = self._run
            prediction = run.predict(held.tensor[None], top_k=top_k)[0]
            explained = explain_tensors(run, held.tensor[None], [run.row_of(prediction.classes[0])])[0]
            view = self._explanation(run, explained)
        taught = set(run.taught_classes)
        top = [{"class": c, "probability": p, "kind": _kind(run, run.row_of(c), taught)}
               for c, p in zip(prediction.classes, prediction.probabilities)]
        return {**held.describe(), "top": top, "explained": view, "seconds": time.perf_counter() - start,
                "image": png_data_uri(explained.shown, scale=explained.scale),
                "classes": len(run.row_names)}

    def explain(self, held: HeldImage, class_name: object) -> dict[str, Any]:
        """The map, words and most important neurons of the image for class ``class_name``.

        Raises:
            DataError: a name that is not a class of the run (the classes are listed).
        """
        if not isinstance(class_name, str):
            raise DataError(f"`class` must be a class name (a string), got {type(class_name).__name__}")
        start = time.perf_counter()
        with self._model_lock:
            run = self._run
            explained = explain_tensors(run, held.tensor[None], [run.row_of(class_name)])[0]
            view = self._explanation(run, explained)
        return {"id": held.id, "explained": view, "seconds": time.perf_counter() - start}

    def _explanation(self, run: LoadedRun, e: Explained) -> dict[str, Any]:
        """What the page shows of one explanation (called under the model lock)."""
        if self._names is None or self._names[0] is not run:
            self._names = (run, neuron_names(run))
        neurons = top_neurons(e.importance, self._names[1], TOP_NEURONS)
        return {"class": e.class_name, "kind": _kind(run, e.row, set(run.taught_classes)),
                "overlay": png_data_uri(e.overlay()),
                "words": [{"name": t.name, "score": t.score} for t in e.words.terms],
                "neurons": [n.to_dict() for n in neurons]}

    # -- changes -------------------------------------------------------------------------------

    def teach(self, lesson: Lesson) -> Change:
        """Teach the run ``lesson``'s class and save it (see the module docstring).

        Raises:
            DataError: a name, description or attribute value ``niwt teach`` refuses (said why).
            RunDirectoryError: the run could not be saved (changed on disk by another command
                meanwhile: the session then reads it again).
        """
        with self._change_lock:
            with self._model_lock:
                run = self._run
                work = dataclasses.replace(run, model=copy.deepcopy(run.model))  # predictions go on meanwhile
            start = time.perf_counter()
            with _collected_warnings() as notes:
                changed = work.teach(lesson)
            seconds = time.perf_counter() - start
            return self._save(changed, "teach", lesson.name, seconds, tuple(notes))

    def forget(self, name: object) -> Change:
        """Make the run forget class ``name`` (a taught or unseen class) and save it.

        Raises:
            DataError: not a class of the run, a seen class, or its last unseen class.
            RunDirectoryError: as :meth:`teach`.
        """
        if not isinstance(name, str) or not name:
            raise DataError(f"`name` must be the name of a class to forget, got {name!r}")
        with self._change_lock:
            start = time.perf_counter()
            with self._model_lock:  # forget copies the model: never while a prediction has its hooks on it
                changed = self._run.forget(name)
            return self._save(changed, "forget", name, time.perf_counter() - start)

    def _save(self, changed: LoadedRun, action: str, name: str, seconds: float,
              notes: tuple[str, ...] = ()) -> Change:
        """Save a changed run (called under the change lock) and make it the current run."""
        start = time.perf_counter()
        try:
            if self.in_place or self.saved_to is not None:
                saved = changed.save(in_place=True)
            else:
                saved = self._save_beside(changed)
        except RunDirectoryError:
            self._reread()
            raise
        names = _named(saved)  # named now, not by the next prediction
        with self._model_lock:
            self._run, self._names = saved, names
        if not self.in_place:
            self.saved_to = Path(saved.path)
        event = saved.events[-1]
        change = Change(action, name, seconds, time.perf_counter() - start, Path(saved.path), event.steps, notes)
        self.changes.append(change)
        log.info("%s %r in %.2f s; saved %s", "taught" if action == "teach" else "forgot", name, seconds, saved.path)
        return change

    @staticmethod
    def _save_beside(changed: LoadedRun, tries: int = 3) -> LoadedRun:
        """Save a new run beside the source, at the first free ``RUN-taught`` name: when another
        command took that name meanwhile (a ``niwt teach``, a second server), the next one."""
        attempt = 1
        while True:
            target = changed.default_out()
            try:
                return changed.save(target)
            except RunDirectoryError:
                if attempt >= tries or not target.exists():  # not a name taken meanwhile: said as it is
                    raise
                log.info("%s was written by another command meanwhile; saving beside it", target)
                attempt += 1

    def _reread(self) -> None:
        """After a refused save: read the current run again as it is on disk (another command changed it)."""
        path = self.run.path
        try:
            fresh = load_run(path)
        except NIWTError as err:
            log.warning("the run at %s cannot be read again (%s); the server keeps the run it had", path, err)
            return
        names = _named(fresh)
        with self._model_lock:
            self._run, self._names = fresh, names

    # -- what the page shows -------------------------------------------------------------------

    def report_path(self) -> tuple[Path | None, str]:
        """The run report the page links to, and what it describes: the current run's, else the source's."""
        run = self.run
        here = Path(run.path) / layout.REPORT
        if here.is_file():
            changed = self.in_place and bool(self.changes)
            return here, "the run before this session's changes (niwt report writes it anew)" if changed else ""
        there = self.source / layout.REPORT
        if there.is_file():
            return there, f"the run the server started on ({self.source.name}), before its changes"
        return None, f"none yet: `niwt report {run.path}` writes it"

    def state(self, limits: Mapping[str, Any]) -> dict[str, Any]:
        """What the page shows of the run: its classes and what each was given, its knowledge, where it is saved."""
        run = self.run
        taught = set(run.taught_classes)
        given = {**self._dataset_given, **given_knowledge(run, None, limit=400)}
        classes = [{"name": n, "kind": _kind(run, r, taught), "given": given.get(n) or _from_vector(run, n)}
                   for r, n in enumerate(run.row_names)]
        encoder = run.encoder
        knowledge: dict[str, Any] = {"source": encoder.source if encoder is not None else run.config.knowledge.source}
        if encoder is not None and encoder.source == "attributes":
            knowledge["attributes"] = [{"name": n, "low": encoder.low[i] if encoder.low else None,
                                        "high": encoder.high[i] if encoder.high else None}
                                       for i, n in enumerate(encoder.names)]
        report, about = self.report_path()
        counts = {k: sum(c["kind"] == k for c in classes) for k in (SEEN, UNSEEN, TAUGHT)}
        return {"run": {"name": self.source.name, "source": str(self.source), "path": str(run.path),
                        "in_place": self.in_place, "dataset": run.info.dataset, "arch": run.config.model.arch,
                        "image_size": run.info.image_size},
                "saved_to": str(self.saved_to) if self.saved_to is not None else (
                    str(self.source) if self.in_place and self.changes else None),
                "changes": [c.to_dict() for c in self.changes],
                "knowledge": knowledge, "classes": classes, "counts": counts,
                "report": {"available": report is not None, "about": about},
                "images": [h.describe() for h in self.images()], "limits": dict(limits)}


def quote_id(value: object) -> str:
    """An image id as a message shows it (cut when long)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def lesson_of(body: Mapping[str, Any]) -> Lesson:
    """The class a teach request gives: ``{"name": ..., "description": "..."}`` or
    ``{"name": ..., "attributes": {"NAME": number, ...}}``, its fields checked by type here and
    by value as ``niwt teach`` checks them (:class:`~niwt.runs.Lesson`).

    Raises:
        DataError: naming the field, what it must be and what it is.
    """
    unknown = sorted(set(body) - {"name", "description", "attributes"})
    if unknown:
        raise DataError(f"unknown field(s) {unknown}: a class to teach has `name` and `description` or `attributes`")
    name = body.get("name")
    if not isinstance(name, str):
        raise DataError(f"`name` must be the new class's name (a string), got {_what(name)}")
    description, attributes = body.get("description"), body.get("attributes")
    if description is not None and not isinstance(description, str):
        raise DataError(f"`description` must be a string, got {_what(description)}")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise DataError(f"`attributes` must be an object of attribute names and numbers, got {_what(attributes)}")
        for key, value in attributes.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DataError(f"attribute {key!r}: its value must be a number, got {_what(value)}")
    return Lesson(name, description=description, attributes=attributes)


def _what(value: object) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def ids_of(value: object, limit: int) -> Sequence[str]:
    """The image ids of a rank request: a list of at most ``limit`` strings.

    Raises:
        DataError: naming what ``ids`` is instead.
    """
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"`ids` must be a list of image ids (strings), got {_what(value)}")
    if len(value) > limit:
        raise DataError(f"`ids` names {len(value)} images; ask for at most {limit} at once")
    return value
