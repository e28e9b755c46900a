"""The documentation holds together: every relative link resolves, the README stays a front page,
and every page under docs/ can be reached from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._paths import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
INDEX = DOCS / "index.md"

README_MAX_LINES = 300
README_MAX_BYTES = 20_000

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1", re.S)
# [text](target) and ![alt](target), with an optional "title"; the text may hold one level of
# brackets (an image inside a link).
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def markdown_files() -> list[Path]:
    """README.md, every page under docs/, and the other markdown pages that link into them."""
    files = [README, *sorted(DOCS.rglob("*.md"))]
    files += [p for p in (ROOT / "ARCHITECTURE.md", ROOT / "benchmarks" / "README.md") if p.is_file()]
    return files


def _outside_fences(text: str) -> list[str]:
    """The lines of a markdown text outside fenced code blocks."""
    lines, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        lines.append(line)
    return lines


def _paragraphs(text: str) -> list[str]:
    """The paragraphs outside fenced code blocks, with inline code spans (which may run over a
    line break) blanked out."""
    paragraphs = re.split(r"\n\s*\n", "\n".join(_outside_fences(text)))
    return [_CODE_SPAN.sub("", p) for p in paragraphs]


def links(text: str) -> list[str]:
    """Every link and image target of a markdown text, outside code."""
    return [m.group(1) for p in _paragraphs(text) for m in _LINK.finditer(p)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, lower case, punctuation
    dropped (letters, digits, '_', '-' and spaces stay), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    result = set()
    for line in _outside_fences(path.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """The relative links of one markdown file that do not resolve, each with the reason."""
    problems = []
    for target in links(path.read_text(encoding="utf-8")):
        if _EXTERNAL.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if file_part:
            try:
                dest.relative_to(root.resolve())
            except ValueError:
                problems.append(f"{target}: outside the repository")
                continue
            if not dest.exists():
                problems.append(f"{target}: no such file")
                continue
        if anchor and dest.suffix == ".md" and anchor.lower() not in anchors(dest):
            problems.append(f"{target}: no heading with the anchor #{anchor} in {dest.name}")
    return problems


def linked_files(path: Path) -> set[Path]:
    """The files a markdown file links to (anchors and external links left out)."""
    result = set()
    for target in links(path.read_text(encoding="utf-8")):
        file_part = target.partition("#")[0]
        if file_part and not _EXTERNAL.match(target):
            result.add((path.parent / file_part).resolve())
    return result


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_readme_is_a_front_page():
    data = README.read_bytes()
    assert len(data.decode("utf-8").splitlines()) <= README_MAX_LINES
    assert len(data) <= README_MAX_BYTES
    headings = [m.group(2).lower() for line in _outside_fences(data.decode("utf-8"))
                if (m := _HEADING.match(line))]
    for wanted in (("install",), ("cite", "citation"), ("license",)):
        assert any(w in h for h in headings for w in wanted), f"no section on {wanted[0]}: {headings}"


def test_readme_shows_a_picture_that_exists():
    images = [t for t in links(README.read_text(encoding="utf-8"))
              if re.search(r"\.(png|jpe?g|gif|svg|webp)$", t.partition("#")[0], re.I)]
    assert images, "the README shows no picture"
    for target in images:
        assert (README.parent / target).is_file(), target


def test_every_docs_page_is_linked_from_the_readme_or_the_index():
    from_readme = linked_files(README)
    assert INDEX.resolve() in from_readme, "README.md does not link docs/index.md"
    reachable = from_readme | linked_files(INDEX)
    orphans = [str(p.relative_to(ROOT)) for p in sorted(DOCS.rglob("*.md"))
               if p != INDEX and p.resolve() not in reachable]
    assert orphans == []


def test_the_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Its part: one\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# Title\n\n"
        "[fine](docs/page.md) [fine](docs/page.md#its-part-one) [fine](#title) [web](https://x.org/y)\n"
        "[missing](docs/nope.md) ![missing](docs/nope.png) [bad anchor](docs/page.md#nowhere)\n"
        "[bad local](#nowhere) [escapes](../outside.md)\n"
        "`[code](docs/nope.md)`\n\n```\n[fenced](docs/nope.md)\n```\n",
        encoding="utf-8")
    problems = broken_links(tmp_path / "README.md", root=tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "docs/nope.md", "docs/nope.png", "docs/page.md#nowhere", "#nowhere", "../outside.md"]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("The paper's claims", "the-papers-claims"),
    ("Checking a dataset: `niwt data inspect`", "checking-a-dataset-niwt-data-inspect"),
    ("A full-size network through the whole pipeline (`tv_pipeline.py`)",
     "a-full-size-network-through-the-whole-pipeline-tv_pipelinepy"),
    ("Teaching a run a class it never saw: measured", "teaching-a-run-a-class-it-never-saw-measured"),
    ("GPUs and clusters", "gpus-and-clusters"),
])
def test_slugs_follow_github(heading, anchor):
    assert slug(heading) == anchor
