"""Loading Kubernetes and Trustwire YAML into the policy domain.

Kinds: ``v1 Namespace``, ``v1 Pod``, ``v1 List``, ``networking.k8s.io/v1 NetworkPolicy`` (with
the API server's validation and defaulting), and ``trustwire.io/v1`` ``NetworkAccessPolicy``,
``ExternalNetwork``, ``ProcessingUnit`` and ``Tier``.

Every problem is a :class:`trustwire.errors.DocumentError` naming the source, the document
(1-based, in file order) and the field path, e.g.
``policies.yaml: document 2 (NetworkPolicy x/deny): spec.ingress[0].from[1].ipBlock.except[0]:
must be a strict subset of cidr 10.0.0.0/16``. Loading is all-or-nothing, and reports every
problem at once (one ``DocumentError``, :meth:`~trustwire.errors.DocumentError.combine`, with
each in ``errors``, in document order):

- every document is parsed; inside one document parsing stops at its first problem, since
  later fields are read in the light of earlier ones (the kind, the tier, the operator);
- a YAML syntax error ends its document only: checking resumes at the next ``---`` line, and
  later documents keep their numbers;
- duplicates are checked among the documents that parsed (a duplicate is one whatever the
  rest); references between documents (:func:`build_cluster`: a policy's tier) only once every
  document parsed, since a broken document may be the one that defines the referent;
- at most :data:`MAX_PROBLEMS` are kept; the rest are counted (``omitted``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from trustwire.errors import DocumentError

from .labels import Labels, LabelSelector, Operator, Requirement
from .model import (
    BUILTIN_TIERS,
    KUBERNETES_TIER,
    RESERVED_LABELS,
    Action,
    Cluster,
    Conditions,
    ContainerPort,
    Direction,
    ExternalNetwork,
    IPAddress,
    IPBlock,
    IPNetwork,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesRule,
    Namespace,
    NetworkAccessPolicy,
    PortMatch,
    Protocol,
    PuType,
    Tier,
    Workload,
    sorted_ports,
)

__all__ = [
    "DEFAULT_ACTION_ANNOTATION",
    "MAX_PROBLEMS",
    "Document",
    "load_cluster",
    "parse_documents",
    "read_sources",
]

DEFAULT_ACTION_ANNOTATION = "trustwire.io/default-action"
TRUSTWIRE_API = "trustwire.io/v1"
YAML_SUFFIXES = (".yaml", ".yml", ".json")

MAX_PROBLEMS = 100
"""Problems kept in one error; more are only counted. Enough to fix a file in one go, and a
bound on what a huge bad input can make us hold and send."""

Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

# Label keys that only attestation sets but that look like a prefix-less K8s key.
_RESERVED_WITH_COLON = "k8s:serviceaccount"


@dataclass(frozen=True)
class Document:
    """One parsed object and where it came from."""

    kind: str
    key: str
    obj: object
    source: str
    index: int


class _Ctx:
    """Where we are: names the source, document and the object in every error."""

    def __init__(self, source: str, index: int) -> None:
        self.source = source
        self.index = index
        self.kind = ""
        self.namespace = ""
        self.name = ""

    def named(self, kind: str, namespace: str | None, name: str) -> None:
        """The document's object is known from here on: errors name it."""
        self.kind, self.namespace, self.name = kind, namespace or "", name

    def fail(self, field: str, problem: str) -> NoReturn:
        raise DocumentError(
            problem,
            source=self.source,
            index=self.index,
            field=field,
            kind=self.kind,
            namespace=self.namespace,
            name=self.name,
        )


class _Problems:
    """Problems found so far: the first ``limit`` kept, each with its place in the input so
    that they are reported in document order; the rest only counted."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.limit = limit
        self._kept: list[tuple[tuple[int, int], int, DocumentError]] = []
        self._omitted = 0
        self._documents: set[tuple[str, int | None]] = set()

    def __bool__(self) -> bool:
        return bool(self._kept)

    def add(self, error: DocumentError, order: tuple[int, int] = (0, 0)) -> None:
        """``order`` is (source position, document index): the sort key of the report."""
        for problem in error.errors:
            self._documents.add((problem.source, problem.index))
            if len(self._kept) < self.limit:
                self._kept.append((order, len(self._kept), problem))
            else:
                self._omitted += 1
        self._omitted += error.omitted

    def raise_if_any(self) -> None:
        if self._kept:
            raise DocumentError.combine(
                [problem for _, _, problem in sorted(self._kept, key=lambda k: k[:2])],
                omitted=self._omitted,
                documents=len(self._documents),
            )


# --------------------------------------------------------------------------- reading sources


def read_sources(paths: Sequence[str], stdin: Any = None) -> list[tuple[str, str]]:
    """Read files, directories (recursively, *.yaml/*.yml/*.json, sorted) and ``-`` (stdin).

    Every path is tried; all that cannot be read are reported together."""
    sources: list[tuple[str, str]] = []
    problems = _Problems()
    for position, path in enumerate(paths):
        try:
            if path == "-":
                stream = stdin if stdin is not None else sys.stdin
                sources.append(("<stdin>", stream.read()))
                continue
            p = Path(path)
            if p.is_dir():
                files = sorted(
                    f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in YAML_SUFFIXES
                )
                if not files:
                    raise DocumentError(
                        "directory contains no .yaml, .yml or .json file", source=path
                    )
                for f in files:
                    sources.append((str(f), _read(str(f))))
            else:
                sources.append((path, _read(path)))
        except DocumentError as error:
            problems.add(error, (position, 0))
    problems.raise_if_any()
    return sources


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DocumentError("no such file or directory", source=path) from None
    except UnicodeDecodeError:
        raise DocumentError("not UTF-8 text", source=path) from None
    except OSError as exc:
        raise DocumentError(f"cannot read: {os.strerror(exc.errno or 0)}", source=path) from None


def _yaml_documents(source: str, text: str) -> Iterator[tuple[int, Any]]:
    """``(document number, parsed value or the DocumentError of its YAML)`` for each document.

    The stream is parsed as one (exactly PyYAML's view of it). After a syntax error the rest is
    parsed a document at a time from the next ``---`` line: YAML forbids ``---`` at the start of
    a line inside any scalar, so such a line always starts a document. Resuming is skipped when
    that split does not agree with PyYAML on the documents before the error; then the error is
    the stream's last problem, as without resuming.
    """
    index = 0
    failure: yaml.YAMLError | None = None
    try:
        for raw in yaml.load_all(text, Loader=Loader):
            index += 1
            yield index, raw
    except yaml.YAMLError as exc:
        failure = exc
    if failure is None:
        return
    yield index + 1, _yaml_problem(source, index + 1, failure, 0)
    chunks = _split_documents(text)
    if len(chunks) <= index + 1 or not all(_one_document(chunk) for _, chunk in chunks[:index]):
        return
    for number, (first_line, chunk) in enumerate(chunks[index + 1 :], start=index + 2):
        try:
            raws = list(yaml.load_all(chunk, Loader=Loader))
        except yaml.YAMLError as exc:
            yield number, _yaml_problem(source, number, exc, first_line)
            continue
        if len(raws) != 1:
            return  # the split is off after all: later numbers could be wrong, so stop here
        yield number, raws[0]


def _yaml_problem(source: str, index: int, exc: yaml.YAMLError, line_offset: int) -> DocumentError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = (
        f"line {mark.line + 1 + line_offset} column {mark.column + 1}: " if mark is not None else ""
    )
    return DocumentError(f"{where}invalid YAML: {problem}", source=source, index=index)


_DOCUMENT_START = re.compile(r"---(?:[ \t]|$)")


def _split_documents(text: str) -> list[tuple[int, str]]:
    """``(first line, text)`` of each document: a ``---`` or ``%`` directive line at column 0
    starts the next one, once the current one has begun (a marker or content). Leading
    comments and directives thus stay with the document they precede."""
    chunks: list[tuple[int, list[str]]] = [(0, [])]
    begun = False
    for number, line in enumerate(text.splitlines(keepends=True)):
        marker = _DOCUMENT_START.match(line) is not None
        directive = line.startswith("%")
        if (marker or directive) and begun:
            chunks.append((number, []))
            begun = False
        chunks[-1][1].append(line)
        stripped = line.strip()
        if marker or (stripped and not stripped.startswith("#") and not directive):
            begun = True
    return [(first, "".join(lines)) for first, lines in chunks if lines]


def _one_document(text: str) -> bool:
    try:
        return len(list(yaml.load_all(text, Loader=Loader))) == 1
    except yaml.YAMLError:
        return False


# --------------------------------------------------------------------------- parsing


def parse_documents(sources: Iterable[tuple[str, str]]) -> list[Document]:
    """Parse and validate every document of every source; nothing is partially returned.

    Raises one :class:`DocumentError` with every problem found (see the module docstring)."""
    documents: list[Document] = []
    problems = _Problems()
    positions: dict[str, int] = {}
    for position, (source, text) in enumerate(sources):
        positions.setdefault(source, position)
        for index, raw in _yaml_documents(source, text):
            if isinstance(raw, DocumentError):
                problems.add(raw, (position, index))
                continue
            if raw is None:
                continue  # an empty document (a stray `---`)
            ctx = _Ctx(source, index)
            try:
                documents.extend(_parse_object(ctx, raw, ""))
            except DocumentError as error:
                problems.add(error, (position, index))
    for duplicate, doc in _duplicates(documents):
        problems.add(duplicate, (positions[doc.source], doc.index))
    problems.raise_if_any()
    return documents


def _parse_object(ctx: _Ctx, raw: Any, path: str) -> list[Document]:
    prefix = f"{path}." if path else ""
    if not isinstance(raw, dict):
        ctx.fail(path or "(document)", f"expected a mapping, got {_type_name(raw)}")
    api_version = raw.get("apiVersion")
    kind = raw.get("kind")
    if not isinstance(api_version, str) or not api_version:
        ctx.fail(f"{prefix}apiVersion", "required")
    if not isinstance(kind, str) or not kind:
        ctx.fail(f"{prefix}kind", "required")
    ctx.kind = kind  # for the structured error (ApplyErrors.kind) even before a name is read
    if (api_version, kind) == ("v1", "List"):
        items = _list(ctx, raw.get("items", []), f"{prefix}items")
        out: list[Document] = []
        for i, item in enumerate(items):
            out.extend(_parse_object(ctx, item, f"{prefix}items[{i}]"))
        return out
    parser = _PARSERS.get((api_version, kind))
    if parser is None:
        known = ", ".join(f"{a} {k}" for a, k in sorted(_PARSERS))
        ctx.fail(f"{prefix}kind", f"unsupported kind {api_version} {kind} (supported: {known})")
    obj, key = parser(ctx, raw, prefix)
    return [Document(kind=kind, key=key, obj=obj, source=ctx.source, index=ctx.index)]


def _duplicates(documents: Sequence[Document]) -> Iterator[tuple[DocumentError, Document]]:
    """Each repeat of an object, naming where it was first defined."""
    # Keyed by the domain type: a Pod and a ProcessingUnit of one name are one workload.
    seen: dict[tuple[type, str], Document] = {}
    for doc in documents:
        first = seen.setdefault((type(doc.obj), doc.key), doc)
        if first is not doc:
            namespace, _, name = doc.key.rpartition("/")
            error = DocumentError(
                f"duplicate {doc.kind} {doc.key}: {first.kind} {first.key} is already defined "
                f"in {first.source} document {first.index}",
                source=doc.source,
                index=doc.index,
                field="metadata.name",
                kind=doc.kind,
                namespace=namespace,
                name=name,
            )
            yield error, doc


# ----------------------------------------------------------------- field readers with paths


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _mapping(ctx: _Ctx, value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.fail(path, f"expected a mapping, got {_type_name(value)}")
    return value


def _list(ctx: _Ctx, value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        ctx.fail(path, f"expected a list, got {_type_name(value)}")
    return value


def _str(ctx: _Ctx, value: Any, path: str, *, required: bool = False) -> str:
    if value is None:
        if required:
            ctx.fail(path, "required")
        return ""
    if not isinstance(value, str):
        ctx.fail(path, f"expected a string, got {_type_name(value)}")
    if required and not value:
        ctx.fail(path, "required")
    return value


def _int(ctx: _Ctx, value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(path, f"expected an integer, got {_type_name(value)}")
    if not lo <= value <= hi:
        ctx.fail(path, f"must be between {lo} and {hi}, got {value}")
    return value


def _float(ctx: _Ctx, value: Any, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.fail(path, f"expected a number, got {_type_name(value)}")
    if not lo <= value <= hi:
        ctx.fail(path, f"must be between {lo} and {hi}, got {value}")
    return float(value)


def _known_fields(ctx: _Ctx, value: dict[str, Any], path: str, allowed: Iterable[str]) -> None:
    allowed_set = set(allowed)
    for key in value:
        if key not in allowed_set:
            where = f"{path}.{key}" if path else str(key)
            hint = ", ".join(sorted(allowed_set))
            ctx.fail(where, f"unknown field (expected one of: {hint})")


def _name(ctx: _Ctx, value: Any, path: str) -> str:
    name = _str(ctx, value, path, required=True)
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        ctx.fail(path, f"invalid name {name!r}: must be a lowercase RFC 1123 subdomain")
    return name


def _namespace_name(ctx: _Ctx, value: Any, path: str) -> str:
    name = _str(ctx, value, path, required=True)
    if len(name) > 63 or not _DNS_LABEL.match(name):
        ctx.fail(path, f"invalid namespace {name!r}: must be a lowercase RFC 1123 label")
    return name


def _label_key(ctx: _Ctx, key: Any, path: str) -> str:
    if not isinstance(key, str) or not key:
        ctx.fail(path, f"invalid label key {key!r}")
    if key == _RESERVED_WITH_COLON:
        return key
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        ctx.fail(path, f"invalid label key {key!r}: prefix must be a DNS subdomain")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        ctx.fail(path, f"invalid label key {key!r}: name must be 63 alphanumerics, '-', '_', '.'")
    return key


def _label_value(ctx: _Ctx, value: Any, path: str, key: str = "") -> str:
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        # YAML turns `true`, `1` into non-strings; Kubernetes rejects them, so do we.
        ctx.fail(path, f"label values must be strings (quote {value!r})")
    if not isinstance(value, str):
        ctx.fail(path, f"expected a string, got {_type_name(value)}")
    if key == "exe-sha256":
        # An attested digest: 64 hex digits, one more than a Kubernetes label value may hold,
        # so the general rule would make a process PU unselectable by its executable.
        if not _SHA256_HEX.fullmatch(value):
            ctx.fail(path, f"invalid exe-sha256 {value!r} (64 lowercase hex digits)")
        return value
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        ctx.fail(path, f"invalid label value {value!r}")
    return value


def _labels(ctx: _Ctx, value: Any, path: str) -> Labels:
    raw = _mapping(ctx, value, path)
    out: dict[str, str] = {}
    for key, val in raw.items():
        k = _label_key(ctx, key, f"{path}.{key}")
        out[k] = _label_value(ctx, val, f"{path}.{key}", k)
    return Labels(out)


def _selector(ctx: _Ctx, value: Any, path: str) -> LabelSelector:
    raw = _mapping(ctx, value, path)
    _known_fields(ctx, raw, path, ("matchLabels", "matchExpressions"))
    match_labels = _labels(ctx, raw.get("matchLabels"), f"{path}.matchLabels")
    requirements: list[Requirement] = []
    for i, expr in enumerate(_list(ctx, raw.get("matchExpressions"), f"{path}.matchExpressions")):
        epath = f"{path}.matchExpressions[{i}]"
        expr = _mapping(ctx, expr, epath)
        _known_fields(ctx, expr, epath, ("key", "operator", "values"))
        key = _label_key(
            ctx, _str(ctx, expr.get("key"), f"{epath}.key", required=True), f"{epath}.key"
        )
        op_raw = _str(ctx, expr.get("operator"), f"{epath}.operator", required=True)
        try:
            op = Operator(op_raw)
        except ValueError:
            ctx.fail(
                f"{epath}.operator",
                f"unknown operator {op_raw!r} (In, NotIn, Exists, DoesNotExist)",
            )
        values = [
            _label_value(ctx, v, f"{epath}.values[{j}]", key)
            for j, v in enumerate(_list(ctx, expr.get("values"), f"{epath}.values"))
        ]
        if op in (Operator.IN, Operator.NOT_IN) and not values:
            ctx.fail(f"{epath}.values", f"must be non-empty for operator {op.value}")
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
            ctx.fail(f"{epath}.values", f"must be empty for operator {op.value}")
        requirements.append(Requirement(key, op, frozenset(values)))
    return LabelSelector(match_labels, tuple(requirements))


def _protocol(ctx: _Ctx, value: Any, path: str) -> Protocol:
    if value is None:
        return Protocol.TCP  # API-server default
    raw = _str(ctx, value, path)
    try:
        return Protocol(raw)
    except ValueError:
        ctx.fail(path, f"unsupported protocol {raw!r} (TCP, UDP, SCTP)")


def _network(ctx: _Ctx, value: Any, path: str) -> IPNetwork:
    raw = _str(ctx, value, path, required=True)
    if "/" not in raw:
        ctx.fail(path, f"invalid CIDR {raw!r}: missing prefix length")
    try:
        # Host bits are tolerated (10.0.1.5/16 means 10.0.0.0/16), as Kubernetes does.
        return ipaddress.ip_network(raw, strict=False)
    except ValueError:
        ctx.fail(path, f"invalid CIDR {raw!r}")


def _address(ctx: _Ctx, value: Any, path: str) -> IPAddress:
    raw = _str(ctx, value, path, required=True)
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        ctx.fail(path, f"invalid IP address {raw!r}")


def _port_match(ctx: _Ctx, value: Any, path: str, *, allow_named: bool = True) -> PortMatch:
    raw = _mapping(ctx, value, path)
    _known_fields(ctx, raw, path, ("protocol", "port", "endPort"))
    protocol = _protocol(ctx, raw.get("protocol"), f"{path}.protocol")
    port_raw = raw.get("port")
    end_raw = raw.get("endPort")
    port: int | str | None
    if port_raw is None:
        port = None
    elif isinstance(port_raw, str):
        if not allow_named:
            ctx.fail(f"{path}.port", "named ports are not allowed here")
        if len(port_raw) > 15 or not _PORT_NAME.match(port_raw) or "--" in port_raw:
            ctx.fail(f"{path}.port", f"invalid port name {port_raw!r}")
        if not re.search(r"[a-z]", port_raw):
            ctx.fail(f"{path}.port", f"invalid port name {port_raw!r}: must contain a letter")
        port = port_raw
    else:
        port = _int(ctx, port_raw, f"{path}.port", 1, 65535)
    end_port: int | None = None
    if end_raw is not None:
        if port is None:
            ctx.fail(f"{path}.endPort", "may not be specified when port is not specified")
        if isinstance(port, str):
            ctx.fail(f"{path}.endPort", "may not be specified when port is a named port")
        end_port = _int(ctx, end_raw, f"{path}.endPort", 1, 65535)
        assert isinstance(port, int)
        if end_port < port:
            ctx.fail(f"{path}.endPort", f"must be greater than or equal to port ({port})")
    return PortMatch(protocol=protocol, port=port, end_port=end_port)


def _metadata(ctx: _Ctx, raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    meta = _mapping(ctx, raw.get("metadata"), f"{prefix}metadata")
    if not meta:
        ctx.fail(f"{prefix}metadata.name", "required")
    return meta


# --------------------------------------------------------------------------- Kubernetes kinds


def _parse_namespace(ctx: _Ctx, raw: dict[str, Any], prefix: str) -> tuple[Namespace, str]:
    meta = _metadata(ctx, raw, prefix)
    name = _namespace_name(ctx, meta.get("name"), f"{prefix}metadata.name")
    ctx.named("Namespace", None, name)
    labels = _labels(ctx, meta.get("labels"), f"{prefix}metadata.labels")
    annotations = _mapping(ctx, meta.get("annotations"), f"{prefix}metadata.annotations")
    default = Action.ALLOW
    if DEFAULT_ACTION_ANNOTATION in annotations:
        apath = f"{prefix}metadata.annotations.{DEFAULT_ACTION_ANNOTATION}"
        value = _str(ctx, annotations[DEFAULT_ACTION_ANNOTATION], apath)
        if value not in ("allow", "reject"):
            ctx.fail(apath, f"must be allow or reject, got {value!r}")
        default = Action(value)
    return Namespace.make(name, labels, default), name


def _parse_pod(ctx: _Ctx, raw: dict[str, Any], prefix: str) -> tuple[Workload, str]:
    meta = _metadata(ctx, raw, prefix)
    name = _name(ctx, meta.get("name"), f"{prefix}metadata.name")
    namespace = _namespace_name(
        ctx, meta.get("namespace", "default"), f"{prefix}metadata.namespace"
    )
    ctx.named("Pod", namespace, name)
    labels = _labels(ctx, meta.get("labels"), f"{prefix}metadata.labels")
    spec = _mapping(ctx, raw.get("spec"), f"{prefix}spec")
    ports: list[ContainerPort] = []
    names: dict[str, str] = {}
    for c, container in enumerate(_list(ctx, spec.get("containers"), f"{prefix}spec.containers")):
        cpath = f"{prefix}spec.containers[{c}]"
        container = _mapping(ctx, container, cpath)
        for p, port in enumerate(_list(ctx, container.get("ports"), f"{cpath}.ports")):
            ppath = f"{cpath}.ports[{p}]"
            port = _mapping(ctx, port, ppath)
            number = _int(ctx, port.get("containerPort"), f"{ppath}.containerPort", 1, 65535)
            protocol = _protocol(ctx, port.get("protocol"), f"{ppath}.protocol")
            pname = _str(ctx, port.get("name"), f"{ppath}.name") or None
            if pname is not None:
                if len(pname) > 15 or not _PORT_NAME.match(pname) or not re.search("[a-z]", pname):
                    ctx.fail(f"{ppath}.name", f"invalid port name {pname!r}")
                if pname in names:
                    ctx.fail(
                        f"{ppath}.name", f"duplicate port name {pname!r} (also {names[pname]})"
                    )
                names[pname] = ppath
            ports.append(ContainerPort(port=number, protocol=protocol, name=pname))
    status = _mapping(ctx, raw.get("status"), f"{prefix}status")
    ips: list[IPAddress] = []
    if status.get("podIP") is not None:
        ips.append(_address(ctx, status.get("podIP"), f"{prefix}status.podIP"))
    for i, entry in enumerate(_list(ctx, status.get("podIPs"), f"{prefix}status.podIPs")):
        epath = f"{prefix}status.podIPs[{i}]"
        ip = _address(ctx, _mapping(ctx, entry, epath).get("ip"), f"{epath}.ip")
        if ip not in ips:
            ips.append(ip)
    host_ips: list[IPAddress] = []
    if status.get("hostIP") is not None:
        host_ips.append(_address(ctx, status.get("hostIP"), f"{prefix}status.hostIP"))
    for i, entry in enumerate(_list(ctx, status.get("hostIPs"), f"{prefix}status.hostIPs")):
        epath = f"{prefix}status.hostIPs[{i}]"
        ip = _address(ctx, _mapping(ctx, entry, epath).get("ip"), f"{epath}.ip")
        if ip not in host_ips:
            host_ips.append(ip)
    workload = Workload(
        namespace=namespace,
        name=name,
        labels=labels,
        ips=tuple(ips),
        ports=sorted_ports(ports),
        pu_type=PuType.POD,
        host_ips=tuple(host_ips),
    )
    return workload, workload.key


def _parse_network_policy(
    ctx: _Ctx, raw: dict[str, Any], prefix: str
) -> tuple[KubernetesNetworkPolicy, str]:
    meta = _metadata(ctx, raw, prefix)
    name = _name(ctx, meta.get("name"), f"{prefix}metadata.name")
    namespace = _namespace_name(
        ctx, meta.get("namespace", "default"), f"{prefix}metadata.namespace"
    )
    ctx.named("NetworkPolicy", namespace, name)
    _known_fields(
        ctx, raw, prefix.rstrip("."), ("apiVersion", "kind", "metadata", "spec", "status")
    )
    spath = f"{prefix}spec"
    spec = _mapping(ctx, raw.get("spec"), spath)
    _known_fields(ctx, spec, spath, ("podSelector", "policyTypes", "ingress", "egress"))
    if "podSelector" not in spec:
        ctx.fail(f"{spath}.podSelector", "required (use {} to select every pod in the namespace)")
    pod_selector = _selector(ctx, spec.get("podSelector"), f"{spath}.podSelector")

    ingress = tuple(
        _k8s_rule(ctx, r, f"{spath}.ingress[{i}]", "from")
        for i, r in enumerate(_list(ctx, spec.get("ingress"), f"{spath}.ingress"))
    )
    egress = tuple(
        _k8s_rule(ctx, r, f"{spath}.egress[{i}]", "to")
        for i, r in enumerate(_list(ctx, spec.get("egress"), f"{spath}.egress"))
    )
    types_raw = _list(ctx, spec.get("policyTypes"), f"{spath}.policyTypes")
    if len(types_raw) > 2:
        ctx.fail(f"{spath}.policyTypes", "may not specify more than two policyTypes")
    types: set[Direction] = set()
    for i, t in enumerate(types_raw):
        tpath = f"{spath}.policyTypes[{i}]"
        value = _str(ctx, t, tpath)
        try:
            direction = Direction(value)
        except ValueError:
            ctx.fail(tpath, f"unsupported value {value!r} (Ingress, Egress)")
        # A repeated value is accepted, as the API server does (the list is atomic).
        types.add(direction)
    if not types:
        # API-server defaulting: Ingress always; Egress only when egress rules are present.
        types = {Direction.INGRESS}
        if egress:
            types.add(Direction.EGRESS)
    policy = KubernetesNetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        policy_types=frozenset(types),
        ingress=ingress,
        egress=egress,
        source=yaml.safe_dump(raw, sort_keys=True),
    )
    return policy, policy.key


def _k8s_rule(ctx: _Ctx, value: Any, path: str, peers_field: str) -> KubernetesRule:
    raw = _mapping(ctx, value, path)
    _known_fields(ctx, raw, path, (peers_field, "ports"))
    peers = tuple(
        _k8s_peer(ctx, p, f"{path}.{peers_field}[{i}]")
        for i, p in enumerate(_list(ctx, raw.get(peers_field), f"{path}.{peers_field}"))
    )
    ports = tuple(
        _port_match(ctx, p, f"{path}.ports[{i}]")
        for i, p in enumerate(_list(ctx, raw.get("ports"), f"{path}.ports"))
    )
    return KubernetesRule(peers=peers, ports=ports)


def _k8s_peer(ctx: _Ctx, value: Any, path: str) -> KubernetesPeer:
    raw = _mapping(ctx, value, path)
    _known_fields(ctx, raw, path, ("podSelector", "namespaceSelector", "ipBlock"))
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if raw.get(k) is not None]
    if not present:
        ctx.fail(path, "must specify a peer (podSelector, namespaceSelector or ipBlock)")
    if "ipBlock" in present and len(present) > 1:
        ctx.fail(path, "may not specify ipBlock together with podSelector or namespaceSelector")
    if "ipBlock" in present:
        return KubernetesPeer(ip_block=_ip_block(ctx, raw["ipBlock"], f"{path}.ipBlock"))
    pod = raw.get("podSelector")
    ns = raw.get("namespaceSelector")
    return KubernetesPeer(
        pod_selector=_selector(ctx, pod, f"{path}.podSelector") if pod is not None else None,
        namespace_selector=(
            _selector(ctx, ns, f"{path}.namespaceSelector") if ns is not None else None
        ),
    )


def _ip_block(ctx: _Ctx, value: Any, path: str) -> IPBlock:
    raw = _mapping(ctx, value, path)
    _known_fields(ctx, raw, path, ("cidr", "except"))
    cidr = _network(ctx, raw.get("cidr"), f"{path}.cidr")
    excepts: list[IPNetwork] = []
    for i, e in enumerate(_list(ctx, raw.get("except"), f"{path}.except")):
        epath = f"{path}.except[{i}]"
        ex = _network(ctx, e, epath)
        # Kubernetes validation: each except must be a strict subset of cidr.
        if (
            ex.version != cidr.version
            or not ex.subnet_of(cidr)  # type: ignore[arg-type]
            or ex.prefixlen <= cidr.prefixlen
        ):
            ctx.fail(epath, f"must be a strict subset of cidr {cidr}")
        excepts.append(ex)
    return IPBlock(cidr=cidr, excepts=tuple(excepts))


# --------------------------------------------------------------------------- Trustwire kinds


def _tw_metadata(
    ctx: _Ctx, raw: dict[str, Any], prefix: str, kind: str, *, namespaced: bool | None
) -> tuple[str, str | None, Labels]:
    meta = _metadata(ctx, raw, prefix)
    _known_fields(ctx, meta, f"{prefix}metadata", ("name", "namespace", "labels", "annotations"))
    name = _name(ctx, meta.get("name"), f"{prefix}metadata.name")
    namespace: str | None = None
    if "namespace" in meta:
        if namespaced is False:
            ctx.fail(f"{prefix}metadata.namespace", f"{kind} is cluster-scoped")
        namespace = _namespace_name(ctx, meta.get("namespace"), f"{prefix}metadata.namespace")
    elif namespaced is True:
        namespace = "default"
    ctx.named(kind, namespace, name)
    _known_fields(ctx, raw, prefix.rstrip("."), ("apiVersion", "kind", "metadata", "spec"))
    labels = _labels(ctx, meta.get("labels"), f"{prefix}metadata.labels")
    return name, namespace, labels


def _parse_access_policy(
    ctx: _Ctx, raw: dict[str, Any], prefix: str
) -> tuple[NetworkAccessPolicy, str]:
    name, namespace, _ = _tw_metadata(ctx, raw, prefix, "NetworkAccessPolicy", namespaced=None)
    spath = f"{prefix}spec"
    spec = _mapping(ctx, raw.get("spec"), spath)
    _known_fields(
        ctx,
        spec,
        spath,
        ("tier", "priority", "subject", "object", "ports", "action", "observeAction", "conditions"),
    )
    tier = _str(ctx, spec.get("tier", "application"), f"{spath}.tier", required=True)
    if tier == KUBERNETES_TIER:
        ctx.fail(
            f"{spath}.tier",
            "the kubernetes tier holds only imported NetworkPolicies and cannot be written to",
        )
    priority = _int(ctx, spec.get("priority", 1000), f"{spath}.priority", 0, 1_000_000)
    for required in ("subject", "object", "action"):
        if required not in spec:
            ctx.fail(f"{spath}.{required}", "required")
    subject = _selector(ctx, spec.get("subject"), f"{spath}.subject")
    obj = _selector(ctx, spec.get("object"), f"{spath}.object")
    action_raw = _str(ctx, spec.get("action"), f"{spath}.action", required=True)
    try:
        action = Action(action_raw)
    except ValueError:
        ctx.fail(
            f"{spath}.action", f"unknown action {action_raw!r} (allow, reject, encrypt, observe)"
        )
    observe_action = Action.REJECT
    if "observeAction" in spec:
        opath = f"{spath}.observeAction"
        if action is not Action.OBSERVE:
            ctx.fail(opath, "only valid with action: observe")
        value = _str(ctx, spec.get("observeAction"), opath, required=True)
        if value not in ("allow", "reject", "encrypt"):
            ctx.fail(opath, f"must be allow, reject or encrypt, got {value!r}")
        observe_action = Action(value)
    ports = tuple(
        _port_match(ctx, p, f"{spath}.ports[{i}]")
        for i, p in enumerate(_list(ctx, spec.get("ports"), f"{spath}.ports"))
    )
    cpath = f"{spath}.conditions"
    cond_raw = _mapping(ctx, spec.get("conditions"), cpath)
    _known_fields(ctx, cond_raw, cpath, ("minReputation", "maxAnomaly"))
    conditions = Conditions(
        min_reputation=(
            _float(ctx, cond_raw["minReputation"], f"{cpath}.minReputation", 0.0, 1.0)
            if "minReputation" in cond_raw
            else None
        ),
        max_anomaly=(
            _float(ctx, cond_raw["maxAnomaly"], f"{cpath}.maxAnomaly", 0.0, 1.0)
            if "maxAnomaly" in cond_raw
            else None
        ),
    )
    policy = NetworkAccessPolicy(
        name=name,
        namespace=namespace,
        tier=tier,
        priority=priority,
        subject=subject,
        object=obj,
        action=action,
        ports=ports,
        observe_action=observe_action,
        conditions=conditions,
    )
    return policy, policy.key


def _parse_external_network(
    ctx: _Ctx, raw: dict[str, Any], prefix: str
) -> tuple[ExternalNetwork, str]:
    name, _, labels = _tw_metadata(ctx, raw, prefix, "ExternalNetwork", namespaced=False)
    spath = f"{prefix}spec"
    spec = _mapping(ctx, raw.get("spec"), spath)
    _known_fields(ctx, spec, spath, ("cidrs",))
    cidrs = tuple(
        _network(ctx, c, f"{spath}.cidrs[{i}]")
        for i, c in enumerate(_list(ctx, spec.get("cidrs"), f"{spath}.cidrs"))
    )
    if not cidrs:
        ctx.fail(f"{spath}.cidrs", "required: at least one CIDR")
    _no_reserved(ctx, labels, f"{prefix}metadata.labels")
    return ExternalNetwork(name=name, labels=labels, cidrs=cidrs), name


def _parse_processing_unit(ctx: _Ctx, raw: dict[str, Any], prefix: str) -> tuple[Workload, str]:
    name, namespace, labels = _tw_metadata(ctx, raw, prefix, "ProcessingUnit", namespaced=True)
    assert namespace is not None
    _no_reserved(ctx, labels, f"{prefix}metadata.labels")
    spath = f"{prefix}spec"
    spec = _mapping(ctx, raw.get("spec"), spath)
    _known_fields(ctx, spec, spath, ("type", "ips", "ports", "trustDomain"))
    type_raw = _str(ctx, spec.get("type", "process"), f"{spath}.type")
    if type_raw not in ("process", "pod"):
        ctx.fail(f"{spath}.type", f"must be process or pod, got {type_raw!r}")
    ips = tuple(
        _address(ctx, ip, f"{spath}.ips[{i}]")
        for i, ip in enumerate(_list(ctx, spec.get("ips"), f"{spath}.ips"))
    )
    ports: list[ContainerPort] = []
    for i, p in enumerate(_list(ctx, spec.get("ports"), f"{spath}.ports")):
        ppath = f"{spath}.ports[{i}]"
        p = _mapping(ctx, p, ppath)
        _known_fields(ctx, p, ppath, ("name", "port", "protocol"))
        ports.append(
            ContainerPort(
                port=_int(ctx, p.get("port"), f"{ppath}.port", 1, 65535),
                protocol=_protocol(ctx, p.get("protocol"), f"{ppath}.protocol"),
                name=_str(ctx, p.get("name"), f"{ppath}.name") or None,
            )
        )
    trust_domain = _str(ctx, spec.get("trustDomain"), f"{spath}.trustDomain")
    workload = Workload(
        namespace=namespace,
        name=name,
        labels=labels,
        ips=ips,
        ports=sorted_ports(ports),
        pu_type=PuType(type_raw),
        trust_domain=trust_domain,
    )
    return workload, workload.key


def _parse_tier(ctx: _Ctx, raw: dict[str, Any], prefix: str) -> tuple[Tier, str]:
    name, _, _ = _tw_metadata(ctx, raw, prefix, "Tier", namespaced=False)
    if name == KUBERNETES_TIER:
        ctx.fail(f"{prefix}metadata.name", "the kubernetes tier is built in and always first")
    spath = f"{prefix}spec"
    spec = _mapping(ctx, raw.get("spec"), spath)
    _known_fields(ctx, spec, spath, ("order",))
    order = _int(ctx, spec.get("order"), f"{spath}.order", 0, 1_000_000)
    return Tier(name=name, order=order), name


def _no_reserved(ctx: _Ctx, labels: Mapping[str, str], path: str) -> None:
    for key in labels:
        if key in RESERVED_LABELS:
            ctx.fail(f"{path}.{key}", "reserved label: only attestation sets it")


_PARSERS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): _parse_namespace,
    ("v1", "Pod"): _parse_pod,
    ("networking.k8s.io/v1", "NetworkPolicy"): _parse_network_policy,
    (TRUSTWIRE_API, "NetworkAccessPolicy"): _parse_access_policy,
    (TRUSTWIRE_API, "ExternalNetwork"): _parse_external_network,
    (TRUSTWIRE_API, "ProcessingUnit"): _parse_processing_unit,
    (TRUSTWIRE_API, "Tier"): _parse_tier,
}


# --------------------------------------------------------------------------- assembling


def build_cluster(
    documents: Sequence[Document], *, trust_domain: str = "", revision: int = 0
) -> Cluster:
    """Assemble parsed documents into one snapshot, checking cross-references."""
    namespaces: dict[str, Namespace] = {}
    workloads: list[Workload] = []
    k8s: list[KubernetesNetworkPolicy] = []
    access: list[tuple[NetworkAccessPolicy, Document]] = []
    externals: list[ExternalNetwork] = []
    tiers: dict[str, Tier] = {t.name: t for t in BUILTIN_TIERS}
    for doc in documents:
        obj = doc.obj
        if isinstance(obj, Namespace):
            namespaces[obj.name] = obj
        elif isinstance(obj, Workload):
            workloads.append(obj)
        elif isinstance(obj, KubernetesNetworkPolicy):
            k8s.append(obj)
        elif isinstance(obj, NetworkAccessPolicy):
            access.append((obj, doc))
        elif isinstance(obj, ExternalNetwork):
            externals.append(obj)
        elif isinstance(obj, Tier):
            tiers[obj.name] = obj
    problems = _Problems()
    for policy, doc in access:  # in document order
        if policy.tier not in tiers:
            known = ", ".join(t.name for t in sorted(tiers.values(), key=lambda t: t.order))
            problems.add(
                DocumentError(
                    f"unknown tier {policy.tier!r} (known: {known})",
                    source=doc.source,
                    index=doc.index,
                    field="spec.tier",
                    kind="NetworkAccessPolicy",
                    namespace=policy.namespace or "",
                    name=policy.name,
                )
            )
    problems.raise_if_any()
    # Namespaces that pods use but no document declares exist implicitly, with default labels.
    for w in workloads:
        namespaces.setdefault(w.namespace, Namespace.make(w.namespace))
    if trust_domain:
        workloads = [
            w if w.trust_domain else _with_trust_domain(w, trust_domain) for w in workloads
        ]
    return Cluster(
        namespaces=dict(sorted(namespaces.items())),
        workloads=tuple(sorted(workloads, key=lambda w: w.key)),
        kubernetes_policies=tuple(sorted(k8s, key=lambda p: p.key)),
        access_policies=tuple(p for p, _ in access),
        external_networks=tuple(sorted(externals, key=lambda n: n.name)),
        tiers=tuple(sorted(tiers.values(), key=lambda t: (t.order, t.name))),
        revision=revision,
        trust_domain=trust_domain,
    )


def _with_trust_domain(w: Workload, trust_domain: str) -> Workload:
    return Workload(
        namespace=w.namespace,
        name=w.name,
        labels=w.labels,
        ips=w.ips,
        ports=w.ports,
        pu_type=w.pu_type,
        trust_domain=trust_domain,
        host_ips=w.host_ips,
    )


def load_cluster(
    sources: Iterable[tuple[str, str]], *, trust_domain: str = "", revision: int = 0
) -> Cluster:
    """Parse ``(source name, YAML text)`` pairs into a :class:`Cluster` snapshot."""
    return build_cluster(parse_documents(sources), trust_domain=trust_domain, revision=revision)
