"""The package's layers, kept by reading every module's imports.

The rule, in one table: each layer may import the layers listed for it and
nothing above. Imports inside functions and under ``TYPE_CHECKING`` count the
same as top-level ones: a lazy import is still a dependency. Only the layers
named in ``ONLY_HERE`` may import those third-party packages (and the
standard library's ``sqlite3``), and no two modules may import each other,
directly or through others.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "streamkit"

ROOT = "root"  # events, request, errors, config: the shared vocabulary
LAYERS: dict[str, frozenset[str]] = {
    ROOT: frozenset(),
    "protocol": frozenset({ROOT}),
    "providers": frozenset({ROOT, "protocol"}),
    "store": frozenset({ROOT, "protocol"}),
    "tools": frozenset({ROOT, "protocol"}),
    "sinks": frozenset({ROOT, "protocol", "providers", "store"}),
    "pipeline": frozenset({ROOT, "protocol", "providers", "store", "tools", "sinks"}),
    "loadtest": frozenset({ROOT, "protocol", "providers", "store", "sinks", "pipeline"}),
    # Ray: the driver and the actors that run pipeline's and loadtest's own code on nodes.
    "cluster": frozenset({ROOT, "protocol", "providers", "store", "sinks", "pipeline", "loadtest"}),
    "cli": frozenset(
        {
            ROOT,
            "protocol",
            "providers",
            "store",
            "tools",
            "sinks",
            "pipeline",
            "loadtest",
            "cluster",
        }
    ),
    "__main__": frozenset({"cli"}),
}
ROOT_MODULES = frozenset({"__init__", "events", "request", "errors", "config"})

_MCP_CLIENT = ("streamkit.tools.mcp_servers", "streamkit.tools.mcp_stdio")
# Packages that belong to one place: imported anywhere else, they fail the rule.
ONLY_HERE: dict[str, tuple[str, ...]] = {
    "llama_cpp": ("streamkit.providers.llama",),
    "typer": ("streamkit.cli",),
    "sqlite3": ("streamkit.store",),
    # The MCP SDK and what comes with it: only the modules that talk to servers.
    "mcp": _MCP_CLIENT,
    "mcp_types": _MCP_CLIENT,
    "httpx2": _MCP_CLIENT,
    "anyio": _MCP_CLIENT,
    "ray": ("streamkit.cluster",),
}
# What sans-IO means for protocol/ and the root: no I/O library at all.
NO_IO = frozenset(
    {
        "trio",
        "httpx",
        "httpcore",
        "h11",
        "anyio",
        "sqlite3",
        "socket",
        "llama_cpp",
        "trio_websocket",
        "typer",
        "rich",
        "ray",
    }
)
SANS_IO_LAYERS = frozenset({ROOT, "protocol"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT
    if len(parts) == 2 and parts[1] == "__main__":
        return "__main__"
    if len(parts) == 2 and (parts[1] in ROOT_MODULES):
        return ROOT
    return parts[1]


def imports_of(module: str, source: str, is_package: bool) -> list[str]:
    """Every module ``source`` imports, absolute, wherever the import statement stands."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(target)
            # ``from streamkit.cli import options`` imports the module streamkit.cli.options
            found.extend(
                f"{target}.{alias.name}"
                for alias in node.names
                if target.startswith("streamkit") and alias.name != "*"
            )
    return found


def package_modules() -> dict[str, tuple[str, bool]]:
    return {
        module_name(path): (path.read_text(), path.name == "__init__.py")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Each broken rule, one line: which module imports what it may not."""
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (source, is_package) in modules.items():
        layer = layer_of(name)
        for target in imports_of(name, source, is_package):
            top = target.split(".")[0]
            if top == "streamkit":
                if target not in modules:
                    continue  # a name imported from a module, not a module
                if target != name and not (is_package and target.startswith(name + ".")):
                    graph[name].add(target)
                other = layer_of(target)
                if other != layer and other not in LAYERS[layer]:
                    problems.append(f"{name} ({layer}) imports {target} ({other})")
                continue
            if top in NO_IO and layer in SANS_IO_LAYERS:
                problems.append(f"{name} ({layer}) imports {top}: {layer} is sans-IO")
            homes = ONLY_HERE.get(top)
            if homes and not any(name == h or name.startswith(h + ".") for h in homes):
                problems.append(f"{name} imports {top}, which only {', '.join(homes)} may")
    problems.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each as a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_module_keeps_to_its_layer() -> None:
    assert violations(package_modules()) == []


def test_every_module_is_in_a_named_layer() -> None:
    unknown = {name for name in package_modules() if layer_of(name) not in LAYERS}
    assert unknown == set()


def test_the_root_holds_only_the_vocabulary() -> None:
    root = {path.stem for path in PACKAGE.glob("*.py")}
    assert root == ROOT_MODULES | {"__main__"}


def with_module(name: str, source: str) -> dict[str, tuple[str, bool]]:
    modules = package_modules()
    modules[name] = (source, False)
    return modules


def test_the_rule_fails_on_a_forbidden_import() -> None:
    """The checker itself: each kind of breach is caught, lazy imports included."""
    lazy_trio = "def f():\n    import trio\n"
    assert violations(with_module("streamkit.protocol.extra", lazy_trio)) == [
        "streamkit.protocol.extra (protocol) imports trio: protocol is sans-IO"
    ]
    upward = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from streamkit.pipeline.turn import run_turn\n"
    )
    assert violations(with_module("streamkit.providers.extra", upward)) == [
        "streamkit.providers.extra (providers) imports streamkit.pipeline.turn (pipeline)"
    ]
    assert violations(with_module("streamkit.pipeline.extra", "import llama_cpp\n")) == [
        "streamkit.pipeline.extra imports llama_cpp, which only streamkit.providers.llama may"
    ]
    assert violations(with_module("streamkit.sinks.extra", "import typer\n")) == [
        "streamkit.sinks.extra imports typer, which only streamkit.cli may"
    ]
    assert violations(with_module("streamkit.pipeline.extra", "import ray\n")) == [
        "streamkit.pipeline.extra imports ray, which only streamkit.cluster may"
    ]


def test_the_rule_fails_on_a_cycle() -> None:
    modules = package_modules()
    modules["streamkit.protocol.a"] = ("from streamkit.protocol import b\n", False)
    modules["streamkit.protocol.b"] = ("def f():\n    from streamkit.protocol.a import x\n", False)
    assert violations(modules) == ["import cycle: streamkit.protocol.a -> streamkit.protocol.b"]
