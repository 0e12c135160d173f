"""Check the host's layering: no import cycles, and no layer importing one above it.

Every ``import`` counts, lazy ones inside functions too (a lazy import still ties the
modules together). Prints one line per problem and exits 1 if there is any; the test
suite runs it (tests/test_architecture.py). The layers are docs/architecture.md's.

    python tools/check_imports.py [REPO]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = {"host": "spasmwatch.host", "firmware": "spasmwatch.firmware",
            "simulator": "spasmwatch.simulator"}

# What each part of host/ may import from host/ (firmware/ and simulator/ are below all
# of them, except that only the CLI, the composition root, links and evaluate may
# reach the simulator).
BASE = {"errors", "optional", "backoff"}  # no host imports: usable everywhere
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "optional": {"errors"},
    "backoff": set(),
    "settings": BASE | {"monitor"},  # the [patterns] section is monitor's AlertConfig
    "pairing": BASE | {"settings"},
    "monitor": BASE | {"monitor"},
    "links": BASE | {"links", "pairing"},
    "records": BASE | {"settings", "monitor", "records"},
    "alerts": BASE | {"settings", "monitor", "pairing", "alerts"},
    "daemon": BASE | {"settings", "monitor", "links", "records", "alerts"},
    "evaluate": BASE | {"settings", "monitor"},
    "flash": BASE,
    "compose": BASE | {"settings", "monitor", "links", "records", "alerts", "daemon",
                       "pairing"},
    "cli": BASE | {"settings", "monitor", "links", "records", "alerts", "daemon",
                   "compose", "evaluate", "flash", "pairing", "cli"},
}
MAY_USE_SIMULATOR = {"cli", "compose", "links", "evaluate"}


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, pkg in PACKAGES.items():
        for f in sorted((root / folder).rglob("*.py")):
            rel = f.relative_to(root / folder).with_suffix("")
            found[".".join([pkg, *rel.parts]).removesuffix(".__init__")] = f
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for cand in (node.module, *(f"{node.module}.{a.name}" for a in node.names)):
                if cand in known:
                    out.add(cand)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
    return out


def part(mod: str) -> str | None:
    """The host layer of a module name (None outside host/)."""
    if not mod.startswith("spasmwatch.host."):
        return None
    return mod.split(".")[2]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems(root: Path) -> list[str]:
    known = modules(root)
    graph = {m: imports(p, known) - {m} for m, p in known.items()}
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for mod, deps in sorted(graph.items()):
        layer = part(mod)
        if layer is None:
            continue
        allowed = ALLOWED.get(layer)
        if allowed is None:
            out.append(f"{mod}: host/{layer} is not a known layer (add it to ALLOWED)")
            continue
        for dep in sorted(deps):
            if dep.startswith("spasmwatch.simulator") and layer not in MAY_USE_SIMULATOR:
                out.append(f"{mod} imports {dep}: only {sorted(MAY_USE_SIMULATOR)} may")
            dep_layer = part(dep)
            if dep_layer is not None and dep_layer != layer and dep_layer not in allowed:
                out.append(f"{mod} imports {dep}: host/{layer} may not import "
                           f"host/{dep_layer}")
    top = [m for m in known if m.startswith("spasmwatch.host.") and m.count(".") == 2
           and not known[m].name == "__init__.py"]
    if len(top) > 10:
        out.append(f"{len(top)} modules at the top of host/ (at most 10): {sorted(top)}")
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = problems(root)
    for line in found:
        print(line)
    print(f"{len(modules(root))} modules, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
