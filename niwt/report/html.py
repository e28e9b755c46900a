"""One self-contained HTML page of a run: tables, plots and explained images.

Every image is inlined as a ``data:image/png;base64`` URI and the style sheet is inline, so the page
has no script, no link and no reference to another file; it can be mailed or archived as is. All
inputs are plain: lists of dicts, PNG paths, arrays, or records with ``to_dict()`` / ``rows()``.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from niwt.errors import DataError
from niwt.explain.fidelity import FidelityReport
from niwt.explain.names import NeuronName
from niwt.explain.text import ClassExplanation
from niwt.report.overlay import png_bytes
from niwt.rundir.about import HTML_GENERATOR

__all__ = ["STYLE", "GalleryItem", "build_html_report", "write_html_report", "png_data_uri"]

log = logging.getLogger(__name__)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1200px; color: #1d232a; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 2px solid #d8dee4; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.5em; }
p.note { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure.plot { display: inline-block; margin: 8px 16px 8px 0; }
figure.plot { max-width: 100%; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { font-size: 0.88em; color: #57606a; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; width: 272px; font-size: 0.86em;
        background: #fff; }
.card.right { border-top: 4px solid #2da44e; }
.card.wrong { border-top: 4px solid #cf222e; }
.card .pair { display: flex; gap: 8px; }
.card .pair img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #d0d7de; }
.card .label { margin-top: 6px; }
.card .verdict { font-weight: 600; }
.card.right .verdict { color: #1a7f37; }
.card.wrong .verdict { color: #cf222e; }
.terms { margin: 4px 0 0; padding-left: 18px; }
.card figure.map { margin: 0; }
.card figure.map figcaption { font-size: 0.8em; text-align: center; }
.legend { display: flex; align-items: center; gap: 6px; font-size: 0.85em; color: #57606a; margin: 4px 0 10px; }
.legend .bar { width: 180px; height: 10px; border: 1px solid #d0d7de;
  background: linear-gradient(to right, #00007f, #0000ff, #007fff, #00ffff, #7fff7f, #ffff00, #ff7f00, #ff0000, #7f0000); }
.empty { color: #57606a; font-style: italic; }
"""
"""The style sheet of niwt's pages (the report, and the page of ``niwt serve``, which adds its own rules)."""


_LEGEND = ('<div class="legend">Grad-CAM map: <span>low</span><span class="bar"></span><span>high</span> '
           "importance of the image's regions for the class named under the map</div>")
"""The colour scale of the maps (matplotlib's jet, which :func:`niwt.report.overlay.overlay` draws with)."""


@dataclass(frozen=True, eq=False)
class GalleryItem:
    """One explained image of the gallery.

    Attributes:
        image: the image: ``[H, W, 3]`` uint8 / float array or tensor, or a PNG path.
        overlay: its Grad-CAM overlay, in the same forms (``None``: no overlay).
        true_name: the image's class.
        predicted_name: the class the model predicts.
        explanation: the explanation's terms as ``(name, score)`` pairs, or one line of text.
        note: a free line under the card (e.g. the class explained, when it is not the prediction).
    """

    image: object
    overlay: object | None = None
    true_name: str = ""
    predicted_name: str = ""
    explanation: str | Sequence[tuple[str, float]] = ()
    note: str = ""

    @property
    def correct(self) -> bool:
        return self.true_name == self.predicted_name


def png_data_uri(source: object, *, scale: int = 1) -> str:
    """``data:image/png;base64,...`` of a PNG file path, PNG bytes, or an ``[H, W, 3]`` image.

    Raises:
        DataError: for a file or bytes that are not a PNG, or a malformed image array.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"image file {str(path)!r} does not exist")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = png_bytes(source, scale=scale)
    if not data.startswith(_PNG_MAGIC):
        raise DataError("inlined images must be PNG; got data that does not start with the PNG signature")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{_esc('-' if value is None else value)}</td>"
    if isinstance(value, Integral):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, Real):
        v = float(value)
        return f'<td class="num">{"-" if not np.isfinite(v) else f"{v:.3f}"}</td>'
    return f"<td>{_esc(value)}</td>"


def _table(rows: Sequence[Mapping[str, object]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_esc(empty)}</p>'
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plots(plots: Sequence[object]) -> str:
    parts = []
    for entry in plots:
        caption, path = (entry if isinstance(entry, tuple) else (Path(entry).stem.replace("_", " "), entry))
        parts.append(f'<figure class="plot"><img src="{png_data_uri(path)}" alt="{_esc(caption)}">'
                     f"<figcaption>{_esc(caption)}</figcaption></figure>")
    return "".join(parts) or '<p class="empty">no plots</p>'


def _terms(explanation: str | Sequence[tuple[str, float]]) -> str:
    if isinstance(explanation, str):
        return f"<div>{_esc(explanation)}</div>" if explanation else ""
    items = "".join(f"<li>{_esc(name)} <span class='score'>({float(score):+.3f})</span></li>"
                    for name, score in explanation)
    return f'<ul class="terms">{items}</ul>' if items else ""


def _card(item: GalleryItem, scale: int) -> str:
    status = "right" if item.correct else "wrong"
    imgs = f'<img src="{png_data_uri(item.image, scale=scale)}" alt="image">'
    if item.overlay is not None:
        imgs += (f'<figure class="map"><img src="{png_data_uri(item.overlay, scale=scale)}" '
                 f'alt="Grad-CAM map of {_esc(item.predicted_name)}"><figcaption>map of '
                 f"<b>{_esc(item.predicted_name)}</b></figcaption></figure>")
    verdict = "right" if item.correct else "wrong"
    note = f"<div class='label'>{_esc(item.note)}</div>" if item.note else ""
    return (f'<div class="card {status}"><div class="pair">{imgs}</div>'
            f'<div class="label"><span class="verdict">{verdict}</span>: true <b>{_esc(item.true_name)}</b>, '
            f"predicted <b>{_esc(item.predicted_name)}</b></div>"
            f"<div class='label'>because:</div>{_terms(item.explanation)}{note}</div>")


def _gallery(items: Sequence[GalleryItem | Mapping[str, object]], scale: int) -> str:
    cards = [item if isinstance(item, GalleryItem) else GalleryItem(**item) for item in items]
    if not cards:
        return '<p class="empty">no images</p>'
    out = []
    for title, group in (("right", [c for c in cards if c.correct]), ("wrong", [c for c in cards if not c.correct])):
        if group:
            out.append(f"<h3>{title} ({len(group)})</h3><div class='gallery'>"
                       + "".join(_card(c, scale) for c in group) + "</div>")
    return "".join(out)


def _neuron_rows(names: Sequence[NeuronName], limit: int | None) -> list[dict[str, object]]:
    return [{"channel": n.channel, "name": n.name, "terms": ", ".join(f"{t.name} ({t.score:+.3f})" for t in n.terms)}
            for n in (list(names)[:limit] if limit is not None else names)]


def build_html_report(
    *,
    title: str = "NIWT report",
    subtitle: str = "",
    gzsl_rows: Sequence[Mapping[str, object]] = (),
    plots: Sequence[str | Path | tuple[str, str | Path]] = (),
    gallery: Sequence[GalleryItem | Mapping[str, object]] = (),
    class_explanations: Sequence[ClassExplanation] = (),
    given: Mapping[str, str] | None = None,
    neuron_names: Sequence[NeuronName] = (),
    fidelity: FidelityReport | None = None,
    taught: Sequence[Mapping[str, object]] = (),
    image_scale: int = 4,
    neuron_limit: int | None = 64,
) -> str:
    """The HTML text of one self-contained page.

    Args:
        title: page title.
        subtitle: one line under the title (dataset, model, seed).
        gzsl_rows: the GZSL table, one dict per method (``method``, ``S``, ``U``, ``H``, ``ZSL``, ``AUSUC``).
        plots: PNG paths (or ``(caption, path)``), e.g. the Λ sweep.
        gallery: explained test images (:class:`GalleryItem` or dicts of its fields); shown as
            right and wrong groups.
        class_explanations: per class, what the forward map makes of its knowledge, read back in
            words through the inverse map (:class:`~niwt.explain.text.ClassExplanation`).
        given: per class name, the description or attribute values it was given (shown beside).
        neuron_names: the neuron names (:class:`~niwt.explain.names.NeuronName`).
        fidelity: the explanations' fidelity (:class:`~niwt.explain.fidelity.FidelityReport`), if measured.
        taught: what the run was taught or made to forget since it ran, one dict per event (``when``,
            ``what``, ``classes``, ``told``, ``transfer``); the section is shown only when there is any.
        image_scale: nearest-neighbour upscaling of gallery images given as arrays.
        neuron_limit: neurons listed at most (``None``: all).

    Returns:
        The page, as a string.
    """
    classes = []
    for c in class_explanations:
        name = c.class_name if c.class_name is not None else c.class_index
        row = {"class": name}
        if given is not None:
            row["given (description or attributes)"] = given.get(str(name), "-")
        row["read back through the maps"] = c.text
        classes.append(row)
    n_names = len(neuron_names)
    shown = n_names if neuron_limit is None else min(n_names, neuron_limit)
    sections = [
        ("Generalized zero-shot results",
         "The run's figures on its dataset's test images, before any class was taught or forgotten." if taught else "",
         _table(list(gzsl_rows), "no results")),
        ("Plots", "", _plots(plots)),
        ("Unseen-class test images, explained",
         "Left: the test image; right: the Grad-CAM map of the predicted class over it (named under it); below: the "
         "top knowledge terms of the predicted class's importance for this image, through the inverse map.",
         _LEGEND + _gallery(gallery, image_scale)),
        ("What the network was told about each unseen class",
         "What each class was given, and beside it the top knowledge terms of the importance the forward map "
         "predicted from it, read back through the inverse map: how much of the description reached the network.",
         _table(classes, "no class explanations")),
        ("Neuron names",
         f"Channels of the importance layer named by the inverse map of their one-hot importance"
         f"{f' ({shown} of {n_names} shown)' if shown < n_names else ''}.",
         _table(_neuron_rows(neuron_names, neuron_limit), "no neuron names")),
        ("Fidelity of the explanations", "Each measure of the network beside its baselines.",
         _table([] if fidelity is None else fidelity.rows(), "no fidelity measures")),
    ]
    if taught:
        sections.insert(0, ("Taught and forgotten since the run",
                            "Classes added from their descriptions (niwt teach) or taken out (niwt forget), oldest "
                            "first: their rows come from the run's transfer, with no image of them.",
                            _table(list(taught), "")))
    body = "".join(f"<section><h2>{_esc(name)}</h2>" + (f'<p class="note">{_esc(note)}</p>' if note else "")
                   + f"{content}</section>" for name, note, content in sections)
    sub = f'<p class="note">{_esc(subtitle)}</p>' if subtitle else ""
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="{HTML_GENERATOR}"><title>{_esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>{sub}{body}</body></html>\n")
    log.debug("html report: %d characters", len(page))
    return page


def write_html_report(path: str | Path, **kwargs: object) -> Path:
    """Write :func:`build_html_report` (same keyword arguments) to ``path`` as UTF-8; returns the path."""
    path = Path(path)
    path.write_text(build_html_report(**kwargs), encoding="utf-8")
    return path
