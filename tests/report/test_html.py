"""The HTML report: one self-contained page (inline PNGs, no script, no external reference)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from niwt.errors import DataError
from niwt.explain import ClassExplanation, Dissection, FidelityReport, Localisation, NeuronName, Term, TextPrecision
from niwt.report.html import GalleryItem, build_html_report, png_data_uri, write_html_report
from niwt.report.overlay import overlay, save_png


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _report() -> FidelityReport:
    loc = Localisation("unseen", 40, 0.38, 0.87, 0.17, 0.17, 0.08)
    text = TextPrecision("unseen", 40, 3, 0.56, 0.2, 0.95, 0.52)
    return FidelityReport((loc,), (text,), Dissection(60, 4, 3, 0.95, 0.3, 0.2, 0.15, 0.1))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("html")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    cam = rng.random((32, 32))
    plot = save_png(folder / "lambda_sweep.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    gallery = [
        GalleryItem(image, overlay(image, cam), "red-disc", "red-disc", [("colour:red", 0.4), ("shape:disc", 0.3)]),
        {"image": image, "overlay": None, "true_name": "blue <square>", "predicted_name": "red-disc",
         "explanation": "colour:red, shape:disc", "note": "explained: predicted class"},
    ]
    names = [NeuronName(0, (Term("shape:disc", 0.2, 0), Term("colour:red", 0.1, 1))),
             NeuronName(1, (Term("size:small", 0.3, 5),))]
    return build_html_report(
        title="NIWT & shapes", subtitle="seed 0",
        gzsl_rows=[{"method": "NIWT", "S": 0.61, "U": 0.22, "H": 0.32, "ZSL": 0.5, "AUSUC": float("nan")}],
        plots=[("Λ sweep", plot)], gallery=gallery, neuron_names=names, fidelity=_report(),
        class_explanations=[ClassExplanation(3, "red-disc", (Term("colour:red", 0.5, 1),))],
    )


def test_page_is_self_contained(page: str) -> None:
    parser = _Tags()
    parser.feed(page)
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 1 + 2 + 1  # the plot, image + overlay, image without overlay
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    assert not any(tag in ("script", "link", "iframe", "object", "embed") for tag, _ in parser.tags)
    assert not any("href" in attrs for _, attrs in parser.tags)
    assert "http" not in page.lower() and "url(" not in page
    assert re.findall(r'src="(?!data:)', page) == []
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_page_shows_every_part_and_escapes_text(page: str) -> None:
    for text in ("NIWT &amp; shapes", "Generalized zero-shot results", "Λ sweep", "right (1)", "wrong (1)",
                 "blue &lt;square&gt;", "(+0.400)", "shape:disc (+0.200), colour:red (+0.100)", "Neuron names", "size:small",
                 "pointing game (unseen)", "permuted names 0.200", "0.610", "What the network was told"):
        assert text in page, text
    assert "<square>" not in page


def test_empty_report_and_file(tmp_path) -> None:
    path = write_html_report(tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert "no results" in text and "no images" in text and "<img" not in text


def test_only_png_is_inlined(tmp_path) -> None:
    bad = tmp_path / "plot.png"
    bad.write_bytes(b"GIF89a...")
    with pytest.raises(DataError, match="PNG"):
        png_data_uri(bad)
    with pytest.raises(DataError, match="does not exist"):
        png_data_uri(tmp_path / "missing.png")
