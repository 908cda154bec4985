"""End-to-end tests: real kernels, real namespaces. They need root (network namespaces, nft).

On a developer's unprivileged run they are skipped with the reason. In CI (``CI`` set, as
`.ci/run` runs) a missing prerequisite fails them instead: a skip there would hide a broken
datapath behind a green build.
"""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    reason = ""
    if os.geteuid() != 0:
        reason = "needs root (network namespaces, nftables)"
    elif missing:
        reason = f"needs {', '.join(missing)}"
    if not reason:
        return
    in_ci = bool(os.environ.get("CI"))
    for item in items:
        if "e2e" in item.keywords:
            if in_ci:
                item.add_marker(pytest.mark.usefixtures("_e2e_prerequisites_missing"))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def _e2e_prerequisites_missing() -> None:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    reason = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}"
    pytest.fail(f"end-to-end prerequisites missing in CI: {reason} (run scripts/bootstrap as root)")
