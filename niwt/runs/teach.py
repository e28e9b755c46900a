r"""Teaching a finished run new classes from a description, and making it forget classes.

A class c taught to a run gets its knowledge vector :math:`k_c` from the run's own
:class:`~niwt.knowledge.KnowledgeEncoder`, exactly as the run's classes got theirs (the TF-IDF
vocabulary and idf as fitted, the zscore statistics, the sentence model: nothing is refitted, so no
other class's vector moves). The run's forward map predicts its importance
:math:`\tau_c = g(k_c)`, and its classifier row is learned as the run's transfer learned the
run's own unseen rows: from the transfer pool's cache the run kept
(``transfer/pool_cache.safetensors``, :class:`~niwt.transfer.PoolCache`), at the run's chosen Λ and
learning rate, on the transfer's random stream, and *beside the run's unseen classes*: the transfer
is run again over the run's unseen classes followed by the new ones, and only the new rows are
kept. That is the setting Λ was chosen for (the transfer's loss averages its cosine term over
pairs shared by every class it fits, so a class fitted alone would weigh Λ differently), and it
makes teaching back a class the run was made to forget, when it was the run's last unseen class,
give exactly the row the run had. With ``transfer.per_class`` (each row fitted alone, on a stream
keyed by its class's name) the new rows are fitted alone too, and a taught class gets the row the
run would have given it as one of its own unseen classes. Neither the dataset nor any training is needed. The new rows are
appended after the run's unseen rows (bias 0, as NIWT's own rows); the backbone, the seen rows, the
other unseen rows and every existing class vector stay as they were.

Forgetting removes a class's row: a class taught earlier leaves the run altogether, one of the
dataset's unseen classes keeps its name and vector (its images are still the dataset's) but no
longer gets a score. Seen classes cannot be forgotten: their rows were trained on their images.

Each teach or forget is a :class:`TeachEvent` in the run's ``taught.json``: what it was told, when,
and what the transfer did.
"""

from __future__ import annotations

import json
import logging
import math
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niwt.data.settings import FINAL
from niwt.errors import DataError, RunDirectoryError
from niwt.mapping import ImportanceMapper
from niwt.models import Backbone
from niwt.seeding import stage_seed
from niwt.transfer import PoolCache, UnseenWeightOptimizer, class_seeds

__all__ = ["ACTIONS", "Lesson", "TeachEvent", "TaughtRows", "read_events", "write_events", "lessons_of",
           "check_new_names", "check_class_name", "check_description", "learn_rows", "parse_attributes", "MAX_NAME",
           "MAX_DESCRIPTION"]

log = logging.getLogger(__name__)

ACTIONS = ("teach", "forget")

MAX_NAME = 100
"""The longest class name (characters): a name is shown in tables, file names and the page."""

MAX_DESCRIPTION = 5000
"""The longest description of a class (characters, all its texts together)."""

_UNSAFE = set('/\\<>:"|?*')


def check_class_name(name: object) -> str:
    """``name`` if it can name a class: a non-empty string of at most :data:`MAX_NAME` characters,
    without blanks at its ends, control characters, path separators or characters file systems
    refuse (``<>:"|?*``), not starting with ``-`` (it would read as a flag) and not ``.`` or ``..``.

    Raises:
        DataError: saying what is wrong with the name, and how to fix it.
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"a class needs a name (a non-empty string), got {name!r}")
    shown = repr(name if len(name) <= 60 else name[:57] + "...")
    if len(name) > MAX_NAME:
        raise DataError(f"class name {shown} has {len(name)} characters; give one of at most {MAX_NAME}")
    if name != name.strip():
        raise DataError(f"class name {shown} starts or ends with blanks; give it without them")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise DataError(f"class name {shown} holds a control character (a newline, a tab ...); give it on one "
                        "line of printable characters")
    bad = sorted(set(name) & _UNSAFE)
    if bad:
        raise DataError(f"class name {shown} holds {' '.join(bad)}; class names may not hold path separators or "
                        'the characters <>:"|?* (use letters, digits, spaces, - _ . +)')
    if name.startswith("-"):
        raise DataError(f"class name {shown} starts with '-', which reads as a flag; give it another first character")
    if name in (".", ".."):
        raise DataError(f"{shown} cannot name a class")
    return name


def check_description(text: str | tuple[str, ...]) -> None:
    """A description may be at most :data:`MAX_DESCRIPTION` characters in all.

    Raises:
        DataError: for a longer one, with its length.
    """
    size = len(text) if isinstance(text, str) else sum(len(t) for t in text)
    if size > MAX_DESCRIPTION:
        raise DataError(f"the description has {size} characters; describe the class in at most {MAX_DESCRIPTION}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class Lesson:
    """A class to teach: its name, and its description (a text run: one text, or several that
    together describe it, as a dataset's several descriptions of a class) or attribute values (an
    attribute run; attributes not named are 0)."""

    name: str
    description: str | tuple[str, ...] | None = None
    attributes: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        check_class_name(self.name)
        if (self.description is None) == (self.attributes is None):
            raise DataError(f"class {self.name!r}: give its description or its attribute values (one of the two), "
                            f"got {'both' if self.description is not None else 'neither'}")
        text = self.description
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            object.__setattr__(self, "description", tuple(text))
        elif text is not None and not isinstance(text, str):
            raise DataError(f"class {self.name!r}: `description` must be a string (or a list of strings), got "
                            f"{type(text).__name__}")
        if self.description is not None:
            try:
                check_description(self.description)
            except DataError as err:
                raise DataError(f"class {self.name!r}: {err}") from None

    @property
    def told(self) -> str:
        """What the class was told, in one line."""
        if self.description is not None:
            return self.description if isinstance(self.description, str) else " / ".join(self.description)
        return ", ".join(f"{k}={float(v):g}" for k, v in dict(self.attributes or {}).items())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            out["description"] = self.description if isinstance(self.description, str) else list(self.description)
        else:
            out["attributes"] = {k: float(v) for k, v in dict(self.attributes or {}).items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Lesson:
        return cls(str(d["name"]), d.get("description"), d.get("attributes"))


def lessons_of(lessons: Lesson | Sequence[Lesson] | str, description: str | None,
               attributes: Mapping[str, float] | None) -> tuple[Lesson, ...]:
    """``teach``'s arguments as lessons: one name with its description or attributes, a lesson, or several."""
    if isinstance(lessons, str):
        return (Lesson(lessons, description, attributes),)
    if description is not None or attributes is not None:
        raise DataError("`description` / `attributes` go with one class name; for several classes give Lesson "
                        "objects, each with its own")
    if isinstance(lessons, Lesson):
        return (lessons,)
    out = tuple(lessons)
    if not out:
        raise DataError("no class to teach: give at least one Lesson")
    bad = [type(x).__name__ for x in out if not isinstance(x, Lesson)]
    if bad:
        raise DataError(f"every class to teach must be a niwt.runs.Lesson, got {bad[0]}")
    return out


def parse_attributes(text: str, names: Sequence[str] = ()) -> dict[str, float]:
    """``"NAME=VALUE,NAME=VALUE"`` as attribute values (the command line's ``--attributes``);
    ``names`` are the run's attributes, of which an example is given when ``text`` is malformed.

    Raises:
        DataError: naming the item that is not ``NAME=NUMBER``, or a name given twice.
    """
    example = ",".join(f"{n}={v}" for n, v in zip(names[:2], ("1", "0.5"))) or "NAME=1,OTHER=0.5"
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not eq or not name or not math.isfinite(number):
            raise DataError(f"--attributes: {item!r} is not NAME=NUMBER (e.g. --attributes {example})")
        if name in out:
            raise DataError(f"--attributes: {name!r} is given twice")
        out[name] = number
    if not out:
        raise DataError(f"--attributes {text!r} names no attribute; give NAME=VALUE pairs separated by commas "
                        f"(e.g. --attributes {example})")
    return out


@dataclass(frozen=True)
class TeachEvent:
    """One teach or forget of a run.

    Attributes:
        action: ``"teach"`` or ``"forget"``.
        classes: the classes taught or forgotten.
        at: when (ISO 8601, local time with offset).
        lessons: what each taught class was told (teach only).
        lam, lr: the transfer's Λ and learning rate (the run's chosen ones); steps: its steps;
            loss: its final loss; seconds: the transfer's wall time (teach only).
    """

    action: str
    classes: tuple[str, ...]
    at: str = field(default_factory=_now)
    lessons: tuple[Lesson, ...] = ()
    lam: float | None = None
    lr: float | None = None
    steps: int | None = None
    loss: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "classes": list(self.classes), "at": self.at,
                "lessons": [x.to_dict() for x in self.lessons], "lam": self.lam, "lr": self.lr, "steps": self.steps,
                "loss": self.loss, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TeachEvent:
        if d.get("action") not in ACTIONS:
            raise DataError(f"`action` must be one of {list(ACTIONS)}, got {d.get('action')!r}")
        return cls(str(d["action"]), tuple(str(c) for c in d["classes"]), str(d["at"]),
                   tuple(Lesson.from_dict(x) for x in d.get("lessons", ())), d.get("lam"), d.get("lr"),
                   d.get("steps"), d.get("loss"), d.get("seconds"))

    def summary(self) -> str:
        """One line: what was taught or forgotten, and when."""
        names = ", ".join(self.classes)
        if self.action == "forget":
            return f"{self.at}: forgot {names}"
        told = "; ".join(f"{x.name}: {x.told}" for x in self.lessons)
        return f"{self.at}: taught {names} ({told}; Λ={self.lam:g}, lr={self.lr:g}, {self.steps} steps)"


def read_events(path: Path) -> tuple[TeachEvent, ...]:
    """The events of a run's ``taught.json`` (none when the file is absent).

    Raises:
        RunDirectoryError: naming the file when it is not a niwt record.
    """
    if not path.exists():
        return ()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return tuple(TeachEvent.from_dict(e) for e in raw["events"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, DataError) as err:
        raise RunDirectoryError(f"{path} is not a niwt record of taught classes ({type(err).__name__}: {err})") from None


def write_events(events: Sequence[TeachEvent]) -> dict[str, Any]:
    """What ``taught.json`` holds."""
    return {"events": [e.to_dict() for e in events]}


def check_new_names(names: Sequence[str], row_names: Sequence[str], seen_names: Sequence[str] = (),
                    dataset_names: Sequence[str] = ()) -> list[str]:
    """Names to teach must be valid class names (:func:`check_class_name`), distinct (also in
    capitals), and new to the run: not one of its classes, nor one of them in other capitals.
    A name of the run's dataset that has no row (a class the run forgot) may be taught back.

    Returns:
        The names that teach back a class of the dataset (said in a warning).

    Raises:
        DataError: naming the first problem, and what to do.
    """
    folded: dict[str, str] = {}
    for name in names:
        check_class_name(name)
        key = name.casefold()
        if key in folded:
            raise DataError(f"class {name!r} is given twice" + (f" (as {folded[key]!r})" if folded[key] != name else "")
                            + "; teach each class once")
        folded[key] = name
    rows = {n.casefold(): n for n in row_names}
    seen = set(seen_names)
    for name in names:
        other = rows.get(name.casefold())
        if other is None:
            continue
        what = "a seen class of this run (trained on its images)" if other in seen else "already a class of this run"
        same = f"{name!r} is {what}" if other == name else f"{name!r} differs from {other!r}, {what}, only in capitals"
        fix = ("choose another name" if other in seen else
               f"choose another name, or forget it first (niwt forget RUN --name {other!r}) to teach it anew")
        raise DataError(f"{same}; {fix}")
    dataset = {n.casefold(): n for n in dataset_names}
    back = []
    for name in names:
        other = dataset.get(name.casefold())
        if other is not None and other != name:
            raise DataError(f"{name!r} differs from {other!r}, a class of the run's dataset, only in capitals; "
                            f"give it as {other!r} to teach that class back, or choose another name")
        if other is not None:
            back.append(name)
    return back


@dataclass(frozen=True)
class TaughtRows:
    """What :func:`learn_rows` learned: one classifier row per new class, with its transfer's record."""

    targets: np.ndarray
    weights: torch.Tensor
    steps: int
    loss: float
    seconds: float


def learn_rows(model: Backbone, mapper: ImportanceMapper, run_vectors: np.ndarray, vectors: np.ndarray,
               pool_cache: PoolCache, *, lam: float, lr: float, transfer: Mapping[str, Any], reduction: str,
               seed: int, names: Sequence[str]) -> TaughtRows:
    """Classifier rows for new classes ``names`` with knowledge ``vectors`` ``[k, d]``, beside the
    run's unseen classes with knowledge ``run_vectors`` ``[U, d]`` (in row order): their importances
    as the run's map predicts them, and NIWT's transfer from the pool cache (the model is not
    modified). Returns the ``k`` new rows.

    ``transfer`` is the run's ``[transfer]`` config (batch size, steps, patience, tolerance, init,
    ``per_class``). All rows in one fit (the default): the run's unseen classes are fitted again
    with the new ones, on the stream of the run's final transfer (:func:`~niwt.seeding.stage_seed`
    of ``seed`` at ``("transfer", FINAL)``), as it is that transfer over more classes, and only the
    new rows are kept. With ``per_class``, each new row alone on its own stream
    (:func:`niwt.transfer.class_seeds`): the row the run would have given the class.
    """
    t0 = time.perf_counter()
    vectors = np.asarray(vectors, np.float64)
    run_vectors = np.asarray(run_vectors, np.float64).reshape(-1, vectors.shape[1])
    per_class = bool(transfer.get("per_class", False))
    knowledge = vectors if per_class else np.concatenate([run_vectors, vectors])
    targets = mapper.predict(knowledge)
    opt = UnseenWeightOptimizer(lam=lam, lr=lr, batch_size=int(transfer["batch_size"]),
                                max_steps=int(transfer["max_steps"]), patience=int(transfer["patience"]),
                                tol=float(transfer["tol"]), init=str(transfer["init"]), mode="fast",
                                reduction=reduction, random_state=stage_seed(seed, "transfer", FINAL))
    opt.fit_cached(model, pool_cache, targets, class_seeds=class_seeds(seed, FINAL, list(names)) if per_class else None)
    seconds = time.perf_counter() - t0
    log.info("transfer of %d classes (%d new): %d steps in %.2f s, final loss %.4f", knowledge.shape[0],
             len(vectors), opt.n_steps_, seconds, opt.history_[-1])
    new = opt.weights_[-len(vectors):]
    return TaughtRows(targets[-len(vectors):], new, int(opt.n_steps_), float(opt.history_[-1]), seconds)
