"""The import graph as docs/architecture.md draws it: the core never imports a plugin, plugins
never import each other (they ask through hooks and tell through events), and no module
takes part in an import circle.

The graph comes from grimp, which reads every ``import`` statement (including those inside
functions); imports under ``if TYPE_CHECKING:`` only serve annotations and are left out.
"""

from __future__ import annotations

import functools

import grimp

CORE, PLUGINS = "toyd", "toyd_plugins"


@functools.cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(CORE, PLUGINS, exclude_type_checking_imports=True, cache_dir=None)


def imports() -> list[tuple[str, str]]:
    """Every direct import edge (importer, imported) between our own modules."""
    g = graph()
    return sorted((a, b) for a in g.modules for b in g.find_modules_directly_imported_by(a))


def plugin_of(module: str) -> str | None:
    """``toyd_plugins.cache.audio`` -> ``cache``; a shared module of the package counts as its own."""
    parts = module.split(".")
    return parts[1] if parts[0] == PLUGINS and len(parts) > 1 else None


def test_the_core_never_imports_a_plugin() -> None:
    bad = [(a, b) for a, b in imports() if a.split(".")[0] == CORE and b.split(".")[0] == PLUGINS]
    assert not bad, f"the core imports plugins: {bad}"


def test_plugins_never_import_each_other() -> None:
    bad = {
        (plugin_of(a), plugin_of(b)): (a, b)
        for a, b in imports()
        if plugin_of(a) and plugin_of(b) and plugin_of(a) != plugin_of(b)
    }
    assert not bad, (
        "plugins import each other (use a hook, an event or a module in toyd/): "
        + ", ".join(f"{a} -> {b}" for a, b in bad.values())
    )


def test_no_import_circles() -> None:
    circles = strongly_connected(imports())
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_finder_finds_circles() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d2"), ("e", "e")]
    assert strongly_connected(edges) == [["a", "b", "c"]]


def strongly_connected(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The groups of two or more modules that import each other round a circle (Tarjan, iterative)."""
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        succ.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in succ:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(succ[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)
