"""The gRPC API contract: protos lint clean, every element is documented, and the committed
stubs in ``libs/trustwire/api`` are exactly what ``scripts/genproto`` produces.

Each check is also run against a deliberately broken input, so a check that silently stopped
detecting anything would fail here instead of passing.
"""

from __future__ import annotations

import filecmp
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "protos"
GENPROTO = ROOT / "scripts" / "genproto"
LIBS = ROOT / "libs"
API_DIR = LIBS / "trustwire" / "api"

# Field numbers of descriptor.proto, used to build SourceCodeInfo location paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM, _MSG_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


# --------------------------------------------------------------------------- helpers


def _proto_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto"))


def _tree_differences(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ between two trees (content, or present on one side only).

    ``__pycache__`` is ignored: importing the committed stubs creates it, and it is never
    committed.
    """

    def files(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    want, have = files(expected), files(actual)
    diffs = [f"missing: {name}" for name in sorted(want - have)]
    diffs += [f"extra: {name}" for name in sorted(have - want)]
    diffs += [
        f"differs: {name}"
        for name in sorted(want & have)
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    ]
    return diffs


def _descriptor_set(proto_root: Path, out: Path) -> descriptor_pb2.FileDescriptorSet:
    """Compile every proto under ``proto_root`` with source info (comments) kept."""
    protos = _proto_files(proto_root)
    assert protos, f"no .proto files under {proto_root}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_root}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *protos,
        ],
        check=True,
        cwd=proto_root,
        capture_output=True,
        text=True,
    )
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def _elements(
    fd: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """Yield (kind, full name, source path) of every documentable element of a file."""
    pkg = fd.package

    def enum(
        e: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...]
    ) -> Iterator[tuple[str, str, tuple[int, ...]]]:
        name = f"{scope}.{e.name}"
        yield "enum", name, path
        for j, v in enumerate(e.value):
            yield "enum value", f"{name}.{v.name}", (*path, _ENUM_VALUE, j)

    def message(
        m: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...]
    ) -> Iterator[tuple[str, str, tuple[int, ...]]]:
        name = f"{scope}.{m.name}"
        if m.options.map_entry:  # synthesized for map<,> fields; documented by the field
            return
        yield "message", name, path
        for j, f in enumerate(m.field):
            yield "field", f"{name}.{f.name}", (*path, _MSG_FIELD, j)
        # proto3 `optional` creates a synthetic oneof per field; it has no source of its own.
        synthetic = {f.oneof_index for f in m.field if f.proto3_optional}
        for j, o in enumerate(m.oneof_decl):
            if j not in synthetic:
                yield "oneof", f"{name}.{o.name}", (*path, _MSG_ONEOF, j)
        for j, nested in enumerate(m.nested_type):
            yield from message(nested, name, (*path, _MSG_NESTED, j))
        for j, e in enumerate(m.enum_type):
            yield from enum(e, name, (*path, _MSG_ENUM, j))

    for i, m in enumerate(fd.message_type):
        yield from message(m, pkg, (_FILE_MESSAGE, i))
    for i, e in enumerate(fd.enum_type):
        yield from enum(e, pkg, (_FILE_ENUM, i))
    for i, s in enumerate(fd.service):
        name = f"{pkg}.{s.name}"
        yield "service", name, (_FILE_SERVICE, i)
        for j, method in enumerate(s.method):
            yield "rpc", f"{name}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, j)


def _undocumented(fds: descriptor_pb2.FileDescriptorSet, kinds: set[str]) -> list[str]:
    """Elements of the given kinds without a non-blank leading comment."""
    missing = []
    for fd in fds.file:
        comments = {tuple(loc.path): loc.leading_comments for loc in fd.source_code_info.location}
        for kind, name, path in _elements(fd):
            if kind in kinds and not comments.get(path, "").strip():
                missing.append(f"{fd.name}: {kind} {name}")
    return missing


def _buf() -> str:
    """The buf binary installed next to this interpreter (the buf-bin dev dependency)."""
    bin_dir = Path(sys.executable).parent
    found = shutil.which("buf", path=str(bin_dir))
    assert found, f"buf not found in {bin_dir}; install the dev extras (buf-bin)"
    return found


def _run_genproto(out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(GENPROTO), str(out)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )


def _generated_module_names(api_dir: Path) -> list[str]:
    base = api_dir.parents[1]  # the directory that contains the `trustwire` package
    return sorted(
        ".".join(p.relative_to(base).with_suffix("").parts)
        for p in api_dir.rglob("*.py")
        if "__pycache__" not in p.parts and p.name != "__init__.py"
    )


def _enums(module: ModuleType) -> Iterator[EnumDescriptor]:
    file_desc: FileDescriptor = module.DESCRIPTOR
    yield from file_desc.enum_types_by_name.values()

    def nested(msg: Descriptor) -> Iterator[EnumDescriptor]:
        yield from msg.enum_types
        for inner in msg.nested_types:
            yield from nested(inner)

    for msg in file_desc.message_types_by_name.values():
        yield from nested(msg)


def _bad_zero_values(enums: Iterator[EnumDescriptor]) -> list[str]:
    bad = []
    for e in enums:
        zero = e.values_by_number.get(0)
        if zero is None or not zero.name.endswith("_UNSPECIFIED") or e.values[0].number != 0:
            first = e.values[0].name if e.values else "<none>"
            bad.append(f"{e.full_name}: first value {first}")
    return bad


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def descriptors(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path_factory.mktemp("descriptors") / "api.binpb"
    return _descriptor_set(PROTO_ROOT, out)


@pytest.fixture
def broken_module(tmp_path: Path) -> Path:
    """A tiny proto module that violates the rules: no comments, enum zero not UNSPECIFIED."""
    root = tmp_path / "protos"
    (root / "bad" / "v1").mkdir(parents=True)
    shutil.copy(PROTO_ROOT / "buf.yaml", root / "buf.yaml")
    (root / "bad" / "v1" / "bad.proto").write_text(
        'syntax = "proto3";\n'
        "package bad.v1;\n"
        "service ThingService {\n"
        "  rpc GetThing(GetThingRequest) returns (GetThingResponse);\n"
        "}\n"
        "message GetThingRequest { string name = 1; }\n"
        "message GetThingResponse { Colour colour = 1; }\n"
        "enum Colour { COLOUR_RED = 0; }\n"
    )
    return root


# --------------------------------------------------------------------------- (a) generated


def test_committed_stubs_match_regeneration(tmp_path: Path) -> None:
    result = _run_genproto(tmp_path)
    assert result.returncode == 0, f"scripts/genproto failed:\n{result.stderr}"
    # The script must leave the hand-written trustwire/__init__.py alone.
    assert not (tmp_path / "trustwire" / "__init__.py").exists()

    diffs = _tree_differences(tmp_path / "trustwire" / "api", API_DIR)
    assert not diffs, (
        "libs/trustwire/api is out of date with protos/; run scripts/genproto and commit:\n"
        + "\n".join(diffs)
    )


def test_tree_comparison_detects_drift(tmp_path: Path) -> None:
    expected, actual = tmp_path / "expected", tmp_path / "actual"
    shutil.copytree(API_DIR, expected, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(expected, actual)
    assert _tree_differences(expected, actual) == []

    (actual / "common" / "v1" / "labels_pb2.py").write_text("# edited by hand\n")
    (actual / "stale_pb2.py").write_text("")
    (actual / "common" / "v1" / "network_pb2.pyi").unlink()
    assert _tree_differences(expected, actual) == [
        "missing: common/v1/network_pb2.pyi",
        "extra: stale_pb2.py",
        "differs: common/v1/labels_pb2.py",
    ]


def test_every_generated_directory_is_a_package() -> None:
    dirs = [API_DIR, *(p for p in API_DIR.rglob("*") if p.is_dir() and p.name != "__pycache__")]
    missing = [d.relative_to(LIBS).as_posix() for d in dirs if not (d / "__init__.py").is_file()]
    assert not missing, f"directories without __init__.py: {missing}"


# --------------------------------------------------------------------------- (b) imports


def test_every_generated_module_imports() -> None:
    names = _generated_module_names(API_DIR)
    # One _pb2, _pb2_grpc per proto file.
    assert len(names) == 2 * len(_proto_files(PROTO_ROOT))
    failures = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every broken module, not only the first
            failures[name] = repr(exc)
    assert not failures, failures


def test_every_area_defines_a_service() -> None:
    from trustwire.api.enforcer.v1 import (
        authorization_service_pb2_grpc,
        enforcer_local_service_pb2_grpc,
    )
    from trustwire.api.flow.v1 import flow_service_pb2_grpc
    from trustwire.api.gateway.v1 import federation_service_pb2_grpc, gateway_service_pb2_grpc
    from trustwire.api.identity.v1 import identity_service_pb2_grpc
    from trustwire.api.policy.v1 import policy_service_pb2_grpc

    stubs = [
        authorization_service_pb2_grpc.AuthorizationServiceStub,
        enforcer_local_service_pb2_grpc.EnforcerLocalServiceStub,
        flow_service_pb2_grpc.FlowServiceStub,
        federation_service_pb2_grpc.FederationServiceStub,
        gateway_service_pb2_grpc.GatewayServiceStub,
        identity_service_pb2_grpc.IdentityServiceStub,
        policy_service_pb2_grpc.PolicyServiceStub,
    ]
    assert all(callable(stub) for stub in stubs)


# --------------------------------------------------------------------------- (c) enums


def test_enum_zero_values_are_unspecified() -> None:
    modules = [
        importlib.import_module(n) for n in _generated_module_names(API_DIR) if n.endswith("_pb2")
    ]
    enums = [e for m in modules for e in _enums(m)]
    assert len(enums) >= 10, "expected the API's enums to be found"
    assert _bad_zero_values(iter(enums)) == []


def test_enum_check_detects_a_bad_zero_value(broken_module: Path, tmp_path: Path) -> None:
    fds = _descriptor_set(broken_module, tmp_path / "bad.binpb")
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    colour = pool.FindEnumTypeByName("bad.v1.Colour")
    assert _bad_zero_values(iter([colour])) == ["bad.v1.Colour: first value COLOUR_RED"]


# --------------------------------------------------------------------------- (d) comments


def test_every_service_and_rpc_has_a_comment(
    descriptors: descriptor_pb2.FileDescriptorSet,
) -> None:
    services = [n for fd in descriptors.file for k, n, _ in _elements(fd) if k == "service"]
    assert len(services) >= 7
    assert _undocumented(descriptors, {"service", "rpc"}) == []


def test_every_message_field_and_enum_has_a_comment(
    descriptors: descriptor_pb2.FileDescriptorSet,
) -> None:
    kinds = {"message", "field", "oneof", "enum", "enum value"}
    assert _undocumented(descriptors, kinds) == []


def test_comment_check_detects_missing_comments(broken_module: Path, tmp_path: Path) -> None:
    fds = _descriptor_set(broken_module, tmp_path / "bad.binpb")
    assert _undocumented(fds, {"service", "rpc"}) == [
        "bad/v1/bad.proto: service bad.v1.ThingService",
        "bad/v1/bad.proto: rpc bad.v1.ThingService.GetThing",
    ]


# --------------------------------------------------------------------------- (e) buf lint


def test_buf_lint_passes() -> None:
    result = subprocess.run(
        [_buf(), "lint"], cwd=PROTO_ROOT, check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


def test_buf_lint_rejects_a_broken_module(broken_module: Path) -> None:
    result = subprocess.run(
        [_buf(), "lint", "--error-format=json"],
        cwd=broken_module,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    rules = {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}
    # The configured rule set (STANDARD + COMMENTS) is what catches these.
    assert {"ENUM_ZERO_VALUE_SUFFIX", "COMMENT_SERVICE", "COMMENT_RPC", "COMMENT_FIELD"} <= rules
