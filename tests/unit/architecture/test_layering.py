"""Domain code never imports gRPC or the etcd client: conversion happens at the edge.

The edges are named here, once: the runtime (servers, channels, error mapping), the etcd store
backend, each service's ``api`` package, the two clients that dial other services, and the
CLI. Every other module of libs/ and services/ is domain code; a new import of ``grpc`` or
``aetcd`` there fails this test, so the rule cannot erode one convenient import at a time.
Imports are read with ``ast`` (function-level imports count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TRANSPORTS = ("grpc", "aetcd")
EDGES = (
    "libs/trustwire/runtime/",
    "libs/trustwire/api/",  # generated stubs
    "libs/trustwire/store/etcd.py",
    "services/identity/trustwire_identity/api/",
    "services/identity/trustwire_identity/client.py",
    "services/policy/trustwire_policy/api/",
    "services/policy/trustwire_policy/distribution/client.py",
    "services/enforcer/trustwire_enforcer/api/",
    "services/gateway/trustwire_gateway/api/",
)


def modules() -> list[Path]:
    roots = [REPO / "libs", *sorted((REPO / "services").iterdir())]
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*.py"))


def transports_imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in TRANSPORTS)
    return found


def test_the_scan_sees_the_edges() -> None:
    """Guard against a test that passes because it read nothing."""
    seen = {str(p.relative_to(REPO)) for p in modules() if transports_imported(p)}
    assert "libs/trustwire/store/etcd.py" in seen
    assert "services/enforcer/trustwire_enforcer/api/peers.py" in seen
    assert len(seen) >= 10


def test_domain_modules_import_no_transport() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(transports_imported(path))
        for path in modules()
        if not str(path.relative_to(REPO)).startswith(EDGES) and transports_imported(path)
    }
    assert offenders == {}, (
        "domain code talks to gRPC and etcd only through an edge module (api/, a client, the "
        f"runtime, the etcd store): {offenders}"
    )
