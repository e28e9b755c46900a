"""Look at a dataset folder without loading it: its format, class and split counts, and what is wrong.

:func:`inspect_dataset` never raises for a malformed dataset (only for a path that does not exist
or matches no format): every fault it finds becomes a line of ``problems``, and what the files
cannot tell is ``None`` with a note saying what would tell it. Each format's survey sits beside its
loader (``survey_awa2`` ...) and reads the files with the loader's functions and defaults, so the
counts are those the loader gives; the registry says which survey a format has.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from niwt.data.formats.survey import Survey
from niwt.data.registry import KINDS, detect_format, format_loader

__all__ = ["InspectReport", "inspect_dataset"]

_COUNTS = ("n_classes", "n_attributes", "n_seen", "n_unseen", "n_train_classes", "n_val_classes",
           "n_images", "n_trainval", "n_test_seen", "n_test_unseen", "feature_dim")


@dataclass(frozen=True)
class InspectReport:
    """What :func:`inspect_dataset` found.

    Attributes:
        path: the inspected path.
        format: the detected format.
        n_classes, n_attributes: classes and knowledge dimensions (``None`` when unknown).
        n_seen, n_unseen: seen / unseen classes (``None`` when the files cannot tell).
        n_train_classes, n_val_classes: the train / val partition of the seen classes.
        n_images: images (or feature rows) the splits refer to.
        n_trainval, n_test_seen, n_test_unseen: images per split.
        feature_dim: width of pre-extracted features, when the format has them.
        has_features: whether pre-extracted features are present.
        has_images: whether image files are present.
        problems: faults found (each names what and where).
        notes: what is unknown and why, and how split counts were obtained.
    """

    path: str
    format: str
    n_classes: int | None = None
    n_attributes: int | None = None
    n_seen: int | None = None
    n_unseen: int | None = None
    n_train_classes: int | None = None
    n_val_classes: int | None = None
    n_images: int | None = None
    n_trainval: int | None = None
    n_test_seen: int | None = None
    n_test_unseen: int | None = None
    feature_dim: int | None = None
    has_features: bool = False
    has_images: bool = False
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["problems"], out["notes"] = list(self.problems), list(self.notes)
        return out

    def format_text(self) -> str:
        """A short human-readable report."""
        def n(value: int | None) -> str:
            return "?" if value is None else str(value)

        lines = [
            f"{self.path}  [{self.format}]",
            f"  classes     {n(self.n_classes)}  (seen {n(self.n_seen)} = train {n(self.n_train_classes)} + "
            f"val {n(self.n_val_classes)}, unseen {n(self.n_unseen)})",
            f"  knowledge   {n(self.n_attributes)} dimensions",
            f"  images      {n(self.n_images)}  (trainval {n(self.n_trainval)}, test_seen {n(self.n_test_seen)}, "
            f"test_unseen {n(self.n_test_unseen)})",
            f"  features    {'width ' + n(self.feature_dim) if self.has_features else 'none'}; "
            f"image files {'yes' if self.has_images else 'no'}",
        ]
        if self.notes:
            lines.append("notes:")
            lines.extend(f"  - {note}" for note in self.notes)
        lines.append("problems: none" if not self.problems else f"problems ({len(self.problems)}):")
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def inspect_dataset(
    path: Path | str, *, format: str | None = None, check_images: bool = True, split_dir: Path | str | None = None,
) -> InspectReport:
    """Inspect a dataset folder (or an xlsa17 split file).

    Args:
        path: the folder.
        format: the format, detected from the folder's contents when ``None``.
        check_images: open every image file's header to find missing and unreadable files.
        split_dir: the xlsa17 folder of an AwA2 or CUB dataset, as the loaders take it: its class
            lists, or with ``res101.mat`` xlsa17's exact image split.

    Returns:
        The report; faults are in ``problems``, never raised.

    Raises:
        DataError: if ``path`` does not exist or matches no format.
        ConfigError: for an unknown ``format``.
    """
    path = Path(path)
    fmt = format if format is not None else detect_format(path)
    format_loader(fmt)  # validates the name
    survey = Survey()
    KINDS[fmt].survey(survey, path, check_images, None if split_dir is None else Path(split_dir))
    values = {k: survey.values.get(k) for k in _COUNTS}
    return InspectReport(path=str(path), format=fmt, has_features=bool(survey.values.get("has_features", False)),
                         has_images=bool(survey.values.get("has_images", False)), problems=tuple(survey.problems),
                         notes=tuple(survey.notes), **values)  # type: ignore[arg-type]
