"""The modules of nncore/ import each other without a cycle: kernels below the network.

Read from the source with ``ast``, every import counts, also those inside functions and under
``if TYPE_CHECKING:`` (a cycle hidden from the interpreter is still a cycle for the reader).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nncore"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """The nncore modules that the module ``name`` (file ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = ".".join(filter(None, [base if node.level else "", node.module or ""]))
            # `from . import kernels` names a module; `from .kernels import forward` does not
            targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            targets = targets or [base]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    # the package root imports the public names of every module; nothing may import it back
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {name: set(deps) for name, deps in GRAPH.items()}
    graph["nncore.kernels"].add("nncore.network")  # as before the kernels moved out
    assert find_cycle(graph) is not None


def test_kernels_sit_below_the_network():
    below = {"nncore.architecture", "nncore.kernels", "nncore.curvature", "nncore.workspace"}
    for name in below | {"nncore.objective"}:
        assert "nncore.network" not in GRAPH[name], name
        assert "nncore" not in GRAPH[name], name
    assert GRAPH["nncore.architecture"] <= {
        "nncore._validation",
        "nncore.activations",
        "nncore.layout",
        "nncore.losses",
    }


def test_every_module_says_what_it_owns():
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{name} has no opening docstring"
