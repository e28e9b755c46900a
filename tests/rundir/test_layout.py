"""One run-directory layout: every file name of a run directory is spelled in
:mod:`niwt.rundir.layout` and nowhere else in the package (docstrings aside), so adding a file to
a run touches one module, and every writer and reader agrees on where it lies."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from niwt.rundir import layout
from tests._paths import ROOT

PACKAGE = ROOT / "niwt"
LAYOUT = PACKAGE / "rundir" / "layout.py"


def _names() -> tuple[set[str], set[str]]:
    """(file names, with their base names; folder names) of the layout."""
    files, folders = set(), set(layout.FOLDERS)
    for name in (*layout.RUN_FILES, *layout.STAGE_FILES, *layout.ABOUT_FILES):
        files |= {name, name.rsplit("/", 1)[-1]}
    return files, folders


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that stand alone as statements (docstrings, attribute docs)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def _works_with_runs(tree: ast.AST) -> bool:
    """Whether a module imports niwt's run-directory rooms (where ``/ "model"`` is a run's folder)."""
    rooms = ("niwt.rundir", "niwt.runs", "niwt.pipeline", "niwt.report")
    return any((isinstance(n, ast.ImportFrom) and (n.module or "").startswith(rooms))
               or (isinstance(n, ast.Import) and any(a.name.startswith(rooms) for a in n.names))
               for n in ast.walk(tree))


def spelled_names(source: str, files: set[str], folders: set[str]) -> list[tuple[int, str]]:
    """``(line, name)`` of every layout name spelled in ``source``'s code: a file name inside any
    string literal, and, in a module that works with run directories, a folder name as a literal
    operand of ``/`` (a run's path being joined)."""
    tree = ast.parse(source)
    if not _works_with_runs(tree):
        folders = set()
    docs = _docstrings(tree)
    patterns = {name: re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w])") for name in files}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [(node.lineno, name) for name, pattern in patterns.items() if pattern.search(node.value)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found += [(side.lineno, side.value) for side in (node.left, node.right)
                      if isinstance(side, ast.Constant) and side.value in folders]
    return sorted(set(found))


def test_no_run_directory_file_name_is_spelled_outside_the_layout_module():
    files, folders = _names()
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == LAYOUT:
            continue
        offences += [f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}"
                     for line, name in spelled_names(path.read_text(encoding="utf-8"), files, folders)]
    assert not offences, "run-directory names spelled outside niwt/rundir/layout.py:\n" + "\n".join(offences)


def test_the_check_finds_names_spelled_in_code_and_leaves_docstrings_alone():
    files, folders = _names()
    source = ('"""Reads model/run.json."""\n'
              'from niwt.rundir import layout\n'
              'def f(run):\n'
              '    """Also mentions metrics.json."""\n'
              '    a = run / "model" / "niwt.safetensors"\n'
              '    b = f"cannot read {run}/metrics.json"\n'
              '    c = "my_metrics.json.bak"\n'
              '    return a, b, c\n')
    assert spelled_names(source, files, folders) == [(5, "model"), (5, "niwt.safetensors"), (6, "metrics.json")]


def test_the_layout_names_each_file_once():
    every = [*layout.RUN_FILES, *layout.STAGE_FILES, *layout.ABOUT_FILES]
    assert len(every) == len(set(every))
    for name in every:  # a run file lies in a layout folder or at the top
        assert "/" not in name or name.split("/", 1)[0] in layout.FOLDERS, name
    assert layout.stage_dir("r", 3, "niwt") == Path("r") / "stages" / "seed3.niwt"
