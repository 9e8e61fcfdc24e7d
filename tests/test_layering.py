"""Imports run one way: every import in ``src/impediments`` goes to its own layer or below.

The layering (bottom to top) is written once, in ``impediments/__init__.py``'s docstring and the
README's package map; :data:`LAYERS` is that order and this test enforces it. Every import counts:
module-level and function-local, ``import x`` and ``from x import y``, relative ones resolved, and
``importlib.import_module("impediments.x")`` with a literal name. An upward edge fails with its
``file:line``; so does a cycle between packages, even inside one layer.
"""
from __future__ import annotations

import ast
from pathlib import Path

import impediments

SRC = Path(impediments.__file__).resolve().parent

#: package (first component under ``impediments``) -> layer; ``""`` is the top-level facade
#: ``impediments/__init__.py``. Keep in step with the package docstring and the README's map.
LAYERS = {
    "_files": 0, "_interrupt": 0, "_json": 0, "_version": 0, "activations": 0, "data": 0, "models": 0, "init": 0, "norm": 0,
    "train": 1,
    "monitor": 2,
    "doctor": 3,
    "fix": 4,
    "plots": 5, "report": 5,
    "experiments": 6,
    "playground": 7, "integrations": 7, "watching": 7,
    "cli": 8, "": 8,
}

#: the monitor's upward edges that remain until the monitor rebuild (issue 23 item 2) removes them,
#: as (importing package, imported package): ``watch()`` still builds the doctor's report and the
#: live playground. The rebuild empties this set; an entry that no longer occurs fails the test, so
#: it cannot go stale.
KNOWN_MONITOR_EDGES: set = set()


def module_of(path: Path, root: Path) -> tuple[list[str], bool]:
    """Dotted parts of the module at ``path`` (``root`` is the package folder) and whether it is a package."""
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return parts[:-1], True
    return parts, False


def _exists(parts: list[str], root: Path) -> bool:
    """``impediments.a.b`` is a module or package of the tree at ``root``."""
    base = root.parent.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every import of the package ``root.name`` in the file, at any depth."""
    own, is_package = module_of(path, root)
    package = own if is_package else own[:-1]
    top = root.name
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            # ``from impediments import doctor`` imports the package impediments.doctor, not the facade
            for alias in node.names:
                sub = module + [alias.name]
                out.append((node.lineno, ".".join(sub if _exists(sub, root) else module)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in out if name == top or name.startswith(top + ".")]


def package_of(dotted: str) -> str:
    """The first component below the top package: ``"doctor"`` for ``impediments.doctor.rules``, ``""`` for it."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def edges(root: Path) -> list[tuple[str, int, str, str]]:
    """``(file relative to root's parent folder, line, from package, to package)`` across packages."""
    out = []
    for path in sorted(root.rglob("*.py")):
        own, _ = module_of(path, root)
        src = package_of(".".join(own))
        for line, name in imports_of(path, root):
            dst = package_of(name)
            if dst != src:
                out.append((path.relative_to(root).as_posix(), line, src, dst))
    return out


def upward(found: list[tuple[str, int, str, str]], layers: dict[str, int]) -> list[str]:
    """One line per import that goes to a higher layer (or from/to a package without a layer)."""
    bad = []
    for file, line, src, dst in found:
        if src not in layers or dst not in layers:
            missing = src if src not in layers else dst
            bad.append(f"{file}:{line}: package {missing!r} has no layer; add it to LAYERS and the docs")
        elif layers[dst] > layers[src]:
            bad.append(f"{file}:{line}: {src or 'impediments'} (layer {layers[src]}) imports "
                       f"{dst or 'impediments'} (layer {layers[dst]})")
    return bad


def cycles(found: list[tuple[str, int, str, str]]) -> list[list[str]]:
    """Strongly connected sets of two or more packages (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for _, _, src, dst in found:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def cycle_lines(found, cycle: list[str]) -> list[str]:
    members = set(cycle)
    return [f"{file}:{line}: {src or 'impediments'} -> {dst or 'impediments'}"
            for file, line, src, dst in found if src in members and dst in members]


# ------------------------------------------------------------------------------------------------ the package
def test_no_upward_import_in_the_package():
    found = edges(SRC)
    assert len(found) > 100, f"only {len(found)} cross-package imports found: the walk is broken"
    known = {(src, dst) for _, _, src, dst in found}
    stale = sorted(KNOWN_MONITOR_EDGES - known)
    assert not stale, f"KNOWN_MONITOR_EDGES lists edges that no longer occur, remove them: {stale}"
    bad = [line for line in upward([e for e in found if (e[2], e[3]) not in KNOWN_MONITOR_EDGES], LAYERS)]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycle_between_packages():
    found = [e for e in edges(SRC) if (e[2], e[3]) not in KNOWN_MONITOR_EDGES]
    found_cycles = cycles(found)
    assert not found_cycles, "import cycles between packages:\n" + "\n".join(
        f"{' <-> '.join(c)}:\n  " + "\n  ".join(cycle_lines(found, c)) for c in found_cycles)


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert packages - set(LAYERS) == set(), f"packages without a layer: {sorted(packages - set(LAYERS))}"
    assert {"doctor", "monitor", "report", "activations"} <= packages


def test_the_documented_order_is_the_enforced_one():
    """The package docstring and the README list the layers in the order of :data:`LAYERS`."""
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    for text, where in ((impediments.__doc__, "impediments/__init__.py"), (readme, "README.md")):
        rows = [line for line in text.splitlines() if line.strip().startswith("layer ")]
        documented = {}
        for row in rows:
            number, _, names = row.strip().removeprefix("layer ").partition(":")
            for name in names.split("(")[0].replace(",", " ").split():
                documented[name.strip("`")] = int(number)
        enforced = {("impediments" if k == "" else k): v for k, v in LAYERS.items()}
        assert documented == enforced, f"{where} documents {documented}, the test enforces {enforced}"


# ------------------------------------------------------------------------------------------------ the checker
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_catches_a_function_local_upward_import(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/core.py": "def f():\n    x = 1\n    from pkg.high.render import draw\n    return draw(x)\n",
        "high/__init__.py": "from pkg.low import core\n",
        "high/render.py": "def draw(x):\n    return x\n",
    })
    found = edges(root)
    assert ("low/core.py", 3, "low", "high") in found
    bad = upward(found, {"low": 0, "high": 1, "": 2})
    assert bad == ["low/core.py:3: low (layer 0) imports high (layer 1)"]


def test_checker_resolves_relative_and_package_imports(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "VERSION = 1\n",
        "low/__init__.py": "",
        "low/a.py": "from ..high import render\nfrom .. import VERSION\nfrom . import b\n",
        "low/b.py": "import importlib\nm = importlib.import_module('pkg.high.render')\n",
        "high/__init__.py": "",
        "high/render.py": "import pkg.low.a as a\n",
    })
    found = sorted(edges(root))
    assert found == [("high/render.py", 1, "high", "low"), ("low/a.py", 1, "low", "high"),
                     ("low/a.py", 2, "low", ""), ("low/b.py", 2, "low", "high")]
    assert len(upward(found, {"low": 0, "high": 1, "": 2})) == 3
    assert cycles(found) == [["high", "low"]]


def test_checker_names_a_package_without_a_layer(tmp_path):
    root = _tree(tmp_path, {"__init__.py": "", "a.py": "import pkg.b\n", "b.py": ""})
    assert upward(edges(root), {"a": 0, "": 1}) == ["a.py:1: package 'b' has no layer; add it to LAYERS and the docs"]


def test_cycle_inside_one_layer_is_caught(tmp_path):
    root = _tree(tmp_path, {"__init__.py": "", "a.py": "def f():\n    import pkg.b\n", "b.py": "import pkg.a\n"})
    found = edges(root)
    assert upward(found, {"a": 0, "b": 0, "": 1}) == []
    assert cycles(found) == [["a", "b"]]
