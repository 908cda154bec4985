"""Bad input prints every problem, one ``trustwire: FILE: document N (KIND NS/NAME): FIELD:
PROBLEM`` line each, then the count; exit status 2; no traceback. Local files (simulate,
explain, apply's local check) and problems reported by a server (apply)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.runtime import Service, ServiceServer, build_server, register_error_detail
from trustwire.runtime._errors import ERROR_DOMAIN, STATUS_DETAILS_KEY
from trustwire_cli.main import main
from trustwire_policy.api.apply_errors import APPLY_ERRORS

BAD_ACTION = """\
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: a, namespace: x}
spec: {subject: {}, object: {}, action: allw}
"""
UNKNOWN_FIELD = """\
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: b, namespace: x}
spec: {subjekt: {}, object: {}, action: allow}
"""
BAD_PORT = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c, namespace: x}
spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}
"""
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: x}\n"


def expected_lines(path: Path) -> list[str]:
    return [
        f"trustwire: {path}: document 1 (NetworkAccessPolicy x/a): spec.action: "
        "unknown action 'allw' (allow, reject, encrypt, observe)",
        f"trustwire: {path}: document 2 (NetworkAccessPolicy x/b): spec.subjekt: "
        "unknown field (expected one of: action, conditions, object, observeAction, ports, "
        "priority, subject, tier)",
        f"trustwire: {path}: document 4 (NetworkPolicy x/c): spec.ingress[0].ports[0].port: "
        "must be between 1 and 65535, got 0",
        "trustwire: 3 problems in 3 documents",
    ]


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("---\n".join([BAD_ACTION, UNKNOWN_FIELD, POD, BAD_PORT]))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(("simulate", "--port", "TCP/80"), id="simulate"),
        pytest.param(
            ("explain", "--from", "x/web", "--to", "x/web", "--port", "TCP/80"), id="explain"
        ),
        # Checked locally before any connection: the unreachable server is never asked.
        pytest.param(("apply", "--dry-run", "--server", "127.0.0.1:1"), id="apply-dry-run"),
        pytest.param(("apply", "--server", "127.0.0.1:1"), id="apply"),
    ],
)
def test_every_problem_of_a_local_file_on_its_own_line(
    capsys: pytest.CaptureFixture[str], bad_file: Path, argv: tuple[str, ...]
) -> None:
    status, out, err = run(capsys, argv[0], "-f", str(bad_file), *argv[1:])
    assert status == 2
    assert out == ""
    assert err.splitlines() == expected_lines(bad_file)
    assert "Traceback" not in err


def test_one_problem_is_one_line_as_before(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(POD + "---\n" + BAD_ACTION)
    status, _, err = run(capsys, "simulate", "-f", str(path), "--port", "TCP/80")
    assert status == 2
    assert err.splitlines() == [
        f"trustwire: {path}: document 2 (NetworkAccessPolicy x/a): spec.action: "
        "unknown action 'allw' (allow, reject, encrypt, observe)"
    ]


def test_problems_of_several_files_in_file_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first, second = tmp_path / "1.yaml", tmp_path / "2.yaml"
    first.write_text(UNKNOWN_FIELD)
    second.write_text(POD + "---\nkind: [\n")
    status, _, err = run(
        capsys, "simulate", "-f", str(first), "-f", str(second), "--port", "TCP/80"
    )
    assert status == 2
    lines = err.splitlines()
    assert lines[0].startswith(f"trustwire: {first}: document 1 (NetworkAccessPolicy x/b): ")
    assert lines[1].startswith(f"trustwire: {second}: document 2: line 6 column 1: invalid YAML")
    assert lines[2:] == ["trustwire: 2 problems in 2 documents"]


def test_a_huge_bad_file_prints_a_bounded_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("---\n".join(BAD_ACTION.replace("name: a", f"name: p{i}") for i in range(130)))
    status, _, err = run(capsys, "simulate", "-f", str(path), "--port", "TCP/80")
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 100 + 2
    assert lines[99].startswith(f"trustwire: {path}: document 100 (NetworkAccessPolicy x/p99)")
    assert lines[100:] == ["trustwire: ... and 30 more", "trustwire: 130 problems in 130 documents"]


# ------------------------------------------------------------------ problems from the server


def server_status(problems: list[pb.DocumentError], total: int) -> status_pb2.Status:
    """What a policy server sends (built by hand: the CLI must understand any server)."""
    message = f"{total} problems in {total} documents; the first: ..."
    status = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=message)
    info = error_details_pb2.ErrorInfo(
        reason="INVALID_DOCUMENT",
        domain=ERROR_DOMAIN,
        metadata={"source": "bad.yaml", "document": "1", "problems": str(total)},
    )
    status.details.add().Pack(info)
    status.details.add().Pack(pb.ApplyErrors(errors=problems))
    return status


class RejectingPolicyService(service_grpc.PolicyServiceServicer):  # type: ignore[misc]
    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status

    async def Apply(self, request: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            self.status.message,
            trailing_metadata=((STATUS_DETAILS_KEY, self.status.SerializeToString()),),
        )


@pytest.fixture
def clean_registry() -> Iterator[None]:
    # Start without the ApplyErrors codec, so that the CLI's own registration is what decodes.
    register_error_detail(APPLY_ERRORS)()
    yield
    register_error_detail(APPLY_ERRORS)()


async def serve(status: status_pb2.Status) -> ServiceServer:
    descriptor = pb.DESCRIPTOR.services_by_name["PolicyService"]
    service = Service.from_servicer(
        descriptor, service_grpc.add_PolicyServiceServicer_to_server, RejectingPolicyService(status)
    )
    return build_server([service])


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(POD)
    return path


@pytest.fixture
async def rejecting_server() -> AsyncIterator[ServiceServer]:
    entries = [
        pb.DocumentError(
            source_name="bad.yaml",
            document_index=0,
            kind="NetworkAccessPolicy",
            namespace="shop",
            name="a",
            field="spec.tier",
            message="unknown tier 'gold' (known: kubernetes, security, application, baseline)",
            reason="UNKNOWN_TIER",
        ),
        pb.DocumentError(
            source_name="bad.yaml",
            document_index=2,
            kind="ProcessingUnit",
            namespace="default",
            name="job",
            field="kind",
            message="ProcessingUnit is not applied",
            reason="KIND_NOT_APPLICABLE",
        ),
    ]
    async with await serve(server_status(entries, total=5)) as server:
        yield server


async def test_every_problem_the_server_reports_on_its_own_line(
    clean_registry: None,
    rejecting_server: ServiceServer,
    good_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The server runs on this event loop; the CLI runs its own in a thread.
    status = await asyncio.to_thread(
        main, ["apply", "-f", str(good_file), "--server", rejecting_server.address]
    )
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        "trustwire: bad.yaml: document 1 (NetworkAccessPolicy shop/a): spec.tier: "
        "unknown tier 'gold' (known: kubernetes, security, application, baseline)",
        "trustwire: bad.yaml: document 3 (ProcessingUnit default/job): kind: "
        "ProcessingUnit is not applied",
        "trustwire: ... and 3 more",
        "trustwire: 5 problems in 2 documents",
    ]
