"""The import rules of ARCHITECTURE.md, read from every module's source (imports inside functions
included): imports point down the layers, never at the package root, never in a circle, and no
private name is taken from another room (a room is a top-level module or subpackage of niwt)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._paths import ROOT

PACKAGE = ROOT / "niwt"


def read_layers(text: str) -> list[set[str]]:
    """The rooms of each layer, top first, from the ```layers block of ARCHITECTURE.md."""
    lines = text.split("```layers\n", 1)[1].split("```", 1)[0].splitlines()
    return [set(line.split()) for line in lines if line.strip()]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def room(name: str) -> str:
    """``niwt.data.source`` -> ``data``; the package root is ``""``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str  # a module of niwt
    line: int
    private: str = ""  # a private name taken from it


def edges_of(path: Path) -> list[Edge]:
    """Every import of a niwt module in ``path``, and every private name it takes from one."""
    importer = module_name(path)
    package = importer if path.name == "__init__.py" else importer.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[Edge] = []
    bound: dict[str, str] = {}  # local name -> niwt module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "niwt" or alias.name.startswith("niwt."):
                    out.append(Edge(importer, alias.name, node.lineno))
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "niwt"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not (base == "niwt" or base.startswith("niwt.")):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if is_module(sub):
                    out.append(Edge(importer, sub, node.lineno))
                    bound[alias.asname or alias.name] = sub
                else:
                    private = alias.name if alias.name.startswith("_") and not alias.name.startswith("__") else ""
                    out.append(Edge(importer, base, node.lineno, private))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            out.append(Edge(importer, bound[node.value.id], node.lineno, node.attr))
    return out


def all_edges(package: Path = PACKAGE) -> list[Edge]:
    return [e for p in sorted(package.rglob("*.py")) for e in edges_of(p)]


def violations(edges: list[Edge], layers: list[set[str]]) -> list[str]:
    """What breaks the rules, one line each (file:line and why)."""
    level = {name: i for i, rooms in enumerate(layers) for name in rooms}
    found = []
    for e in edges:
        a, b = room(e.importer), room(e.imported)
        where = f"{e.importer} (line {e.line})"
        if a == "":  # the package root re-exports the public API: it may import anything
            continue
        if b == "":
            found.append(f"{where} imports the package root `niwt`; import the module that defines the name")
            continue
        if a not in level or b not in level:
            found.append(f"{where}: room {a if a not in level else b!r} is in no layer of ARCHITECTURE.md")
            continue
        if a != b and level[b] <= level[a]:
            found.append(f"{where} imports {e.imported}: room {b!r} is not below room {a!r} in ARCHITECTURE.md")
        if e.private and a != b:
            found.append(f"{where} takes the private name {e.private!r} from {e.imported} (another room)")
    return list(dict.fromkeys(found))


def circles(edges: list[Edge]) -> list[list[str]]:
    """Import circles among niwt's modules (each as the modules on it)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.imported != e.importer:
            graph.setdefault(e.importer, set()).add(e.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


LAYERS = read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def test_every_room_of_the_package_is_in_a_layer():
    rooms = {room(module_name(p)) for p in PACKAGE.rglob("*.py")} - {""}
    listed = set().union(*LAYERS)
    assert rooms - listed == set(), "rooms missing from the ```layers block of ARCHITECTURE.md"
    assert listed - rooms == set(), "ARCHITECTURE.md lists rooms that do not exist"


def test_imports_point_down_the_layers_and_take_no_private_names():
    assert violations(all_edges(), LAYERS) == []


def test_no_import_circles():
    assert circles(all_edges()) == []


# The checker itself, on small packages written here: each rule fails when broken.


def _package(tmp_path: Path, files: dict[str, str]) -> list[Edge]:
    for name, text in files.items():
        path = tmp_path / "niwt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        return all_edges(tmp_path / "niwt")
    finally:
        ROOT = saved


TOY_LAYERS = [{"top"}, {"low"}]


@pytest.mark.parametrize(("files", "message"), [
    ({"low.py": "def f():\n    from niwt.top import g\n", "top.py": "def g(): ...\n"}, "is not below room 'low'"),
    ({"low.py": "import niwt\n"}, "imports the package root"),
    ({"low.py": "from niwt import something\n"}, "imports the package root"),
    ({"low.py": "X = 1\n", "top.py": "from niwt.low import _hidden\n"}, "takes the private name '_hidden'"),
    ({"low.py": "_hidden = 1\n", "top.py": "from niwt import low\nY = low._hidden\n"}, "takes the private name"),
    ({"odd.py": "from niwt import low\n"}, "is in no layer"),
])
def test_the_checker_fails_on_each_broken_rule(tmp_path, files, message):
    files = {"__init__.py": "", "low.py": "", **files}
    found = violations(_package(tmp_path, files), TOY_LAYERS)
    assert any(message in line for line in found), found


def test_the_checker_passes_a_downward_import_and_finds_a_circle(tmp_path):
    edges = _package(tmp_path, {"__init__.py": "", "low/__init__.py": "from niwt.low.a import x\n",
                                "low/a.py": "from niwt.low.b import y\nx = 1\n", "low/b.py": "import niwt.low.a\ny = 2\n",
                                "top.py": "from niwt.low import x\n"})
    assert violations(edges, TOY_LAYERS) == []
    assert circles(edges) == [["niwt.low.a", "niwt.low.b"]]
