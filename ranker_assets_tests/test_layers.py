"""The package's imports flow one way, in the order data flows, and form no cycle.

A module may import from its own layer or a lower one; a stage never reaches up into a later
stage, the Dagster wiring or an entry point. Imports inside functions count too: a lazy import
against the grain is still a dependency against the grain.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ranker_assets"

# Lowest first; each entry is a top-level package (or module) of ranker_assets.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),  # the typed configuration, read by everything
    ("infra", "metrics"),  # Delta, Spark, processes; ranking metrics
    ("world",),  # the simulator: the default data source
    ("logs", "examples"),  # the contract, landing and ingestion; example logs
    ("joining",),
    ("sampling",),
    ("data_validation",),  # is the sampled window fit to train on
    ("training",),
    ("evaluation",),
    ("deployment",),
    ("orchestration", "definitions"),  # Dagster's wiring
    ("entrypoints",),  # CLI, demo, backfill
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `path` imports, anywhere in the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        out |= {t for t in targets if t in known}
    return out


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYER:
        raise AssertionError(f"{module}: not in any layer; add its package to LAYERS")
    return LAYER[top]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(p, known) - {m} for m, p in known.items() if m != "ranker_assets"}


def against_the_grain(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} (layer {LAYERS[layer_of(m)][0]}) imports {t} (layer {LAYERS[layer_of(t)][0]})"
        for m, targets in edges.items()
        for t in targets
        if layer_of(t) > layer_of(m)
    )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_import_flows_down_the_layers() -> None:
    assert against_the_grain(graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_checks_see_a_violation() -> None:
    """The checks themselves: an upward import and a cycle are reported."""
    edges = {
        "ranker_assets.world.truth": {"ranker_assets.evaluation.offline"},
        "ranker_assets.evaluation.offline": {"ranker_assets.world.truth"},
    }
    assert against_the_grain(edges) == [
        "ranker_assets.world.truth (layer world) imports ranker_assets.evaluation.offline "
        "(layer evaluation)"
    ]
    assert cycles(edges) == [["ranker_assets.evaluation.offline", "ranker_assets.world.truth"]]


def test_every_module_has_a_layer_and_none_is_over_400_lines() -> None:
    for module, path in modules().items():
        if module != "ranker_assets":
            layer_of(module)
        lines = len(path.read_text().splitlines())
        if lines > 400:
            pytest.fail(f"{module} has {lines} lines (at most 400: split it by responsibility)")
