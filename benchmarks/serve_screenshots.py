"""The screenshots of ``niwt serve`` in the docs: the page after a prediction and after teaching a
class, in a window 1280 px wide and in one 400 px wide, taken in Debian's Chromium through
Playwright (as the browser tests drive it) on a copy of a finished run.

    python benchmarks/serve_screenshots.py [--run runs/demo] [--out docs]

Writes ``serve_predict_1280.png``, ``serve_taught_1280.png``, ``serve_predict_400.png`` and
``serve_taught_400.png``. The images are new renderings of the shapes world (never in the run's
dataset): a large striped yellow disc, the class the README teaches, and two of the run's own
classes; the class taught is the README's, from the same four attribute values.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TAUGHT = {"shape:disc": "1", "colour:yellow": "1", "pattern:stripes": "1", "size:large": "1"}
IMAGES = [("striped-yellow-disc.png", ("disc", "yellow", "stripes", "large"), 3),
          ("solid-green-disc.png", ("disc", "green", "solid", "large"), 1),
          ("striped-red-star.png", ("star", "red", "stripes", "large"), 2)]


def _png(spec: tuple[str, str, str, str], seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    from niwt.data.shapes import render_shape

    image, _ = render_shape(*spec, np.random.default_rng(seed))
    buf = io.BytesIO()
    Image.fromarray(image).resize((128, 128), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def _small(path: Path, limit: int = 250_000) -> None:
    """Re-encode ``path`` with a palette when it is over ``limit`` bytes (screenshots of flat colours)."""
    from PIL import Image

    if path.stat().st_size <= limit:
        return
    with Image.open(path) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _span(page, selector: str) -> tuple[float, float]:
    """The top and bottom of the first element ``selector`` finds, in page coordinates."""
    return tuple(page.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        return [box.top + window.scrollY, box.bottom + window.scrollY];
    }""", selector))


def shoot(server, out: Path, width: int, files: list[tuple[str, bytes]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.serve._browser import launch

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": width, "height": 1000 if width > 600 else 860},
                                device_scale_factor=1)
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_label("Classes listed per image").fill("4")
        page.get_by_label("Images (PNG or JPEG, any size)").set_input_files(
            files=[{"name": name, "mimeType": "image/png", "buffer": data} for name, data in files])
        expect(page.locator("article.result img.overlay")).to_have_count(len(files))
        page.mouse.move(0, 0)
        if width > 600:
            page.screenshot(path=str(out / f"serve_predict_{width}.png"))
        else:  # the page down to the end of the first image's card
            _, bottom = _span(page, "article.result")
            page.screenshot(path=str(out / f"serve_predict_{width}.png"), full_page=True,
                            clip={"x": 0, "y": 0, "width": width, "height": bottom + 12})
        page.get_by_label("Class name").fill("striped-yellow-disc")
        for name, value in TAUGHT.items():
            page.get_by_label(name, exact=True).fill(value)
        page.get_by_role("button", name="Teach").click()
        expect(page.locator("#teach-status")).to_contain_text("Taught", timeout=120_000)
        page.locator("#teach-status").scroll_into_view_if_needed()
        if width > 600:
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out / f"serve_taught_{width}.png"))
        else:  # the card with the class ranked, then the form and what it said
            top, _ = _span(page, "article.result")
            _, bottom = _span(page, "#teach-status")
            page.screenshot(path=str(out / f"serve_taught_{width}.png"), full_page=True,
                            clip={"x": 0, "y": top - 10, "width": width, "height": bottom - top + 26})
        browser.close()
    for kind in ("predict", "taught"):
        _small(out / f"serve_{kind}_{width}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished run (copied; default: runs/demo)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs", help="where the PNGs go (default: docs)")
    args = parser.parse_args()

    from niwt.serve.server import RunServer, ServeOptions
    from tests.serve._browser import missing

    reason = missing()
    if reason is not None:
        raise SystemExit(reason)
    files = [(name, _png(spec, seed)) for name, spec, seed in IMAGES]
    with tempfile.TemporaryDirectory(prefix="niwt-serve-shots-") as tmp:
        for width, shown in ((1280, files), (400, files[:1])):
            source = Path(shutil.copytree(args.run, Path(tmp) / f"{width}" / args.run.name))
            with RunServer(source, ServeOptions(port=0)) as server:
                shoot(server, args.out, width, shown)
    for path in sorted(args.out.glob("serve_*.png")):
        print(f"{path} {path.stat().st_size // 1000} KB")


if __name__ == "__main__":
    main()
