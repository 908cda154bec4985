"""Apply input (YAML text or structured resources) to validated, storable manifests.

Both inputs go through the policy loader, so validation and its field-path errors are exactly
those of ``trustwire simulate -f``: structured resources are first rendered to the documents
they stand for (``codec.resource_to_document``). Everything is validated before anything is
written, and an input either yields every manifest or raises (``DocumentError`` naming the
source, document and field; ``InvalidArgument`` naming the limit for oversize input).

``metadata.resourceVersion`` in a YAML document (as ``trustwire get -o yaml`` prints it) is
the compare-and-swap expectation of that document, like ``ObjectMeta.resource_version`` of a
structured resource; it is taken out before the loader sees the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from trustwire.errors import DocumentError, InvalidArgument
from trustwire.policy import parse_documents
from trustwire.policy.loader import Loader

from . import codec
from .codec import DomainObject, Kind
from .settings import LimitSettings

__all__ = ["Manifest", "parse_resources", "parse_yaml"]

_KIND_OF_DOCUMENT = {
    "NetworkAccessPolicy": Kind.NETWORK_ACCESS_POLICY,
    "NetworkPolicy": Kind.KUBERNETES_NETWORK_POLICY,
    "ExternalNetwork": Kind.EXTERNAL_NETWORK,
    "Namespace": Kind.NAMESPACE,
    "Tier": Kind.TIER,
}


@dataclass(frozen=True)
class Manifest:
    """One validated resource of an input, ready to store."""

    index: int  # 0-based position among the input's resources (List items flattened)
    kind: Kind
    namespace: str
    name: str
    resource: Any  # policy.v1.Resource, content only (no server fields)
    obj: DomainObject
    resource_version: str  # "" = no expectation (still guarded against concurrent writers)
    source: str
    document: int  # 1-based document number in ``source`` (for error messages)


def parse_yaml(text: str, source_name: str, limits: LimitSettings) -> list[Manifest]:
    size = len(text.encode("utf-8"))
    if size > limits.max_request_bytes:
        raise InvalidArgument(
            f"yaml.text: {size} bytes exceed the limit of {limits.max_request_bytes} bytes "
            "per request (limits.max_request_bytes); split the input",
            field="yaml.text",
            reason="REQUEST_TOO_LARGE",
            metadata={"limit": str(limits.max_request_bytes), "size": str(size)},
        )
    source = source_name or "<yaml>"
    try:
        tops = list(yaml.load_all(text, Loader=Loader))
    except yaml.YAMLError:
        parse_documents([(source, text)])  # raises the loader's DocumentError (line, column)
        raise  # unreachable unless the loader accepts what PyYAML refused
    versions = [_pop_resource_version(raw) for raw in _flatten(tops)]
    return _manifests(tops, source, versions, limits)


def parse_resources(resources: Sequence[Any], limits: LimitSettings) -> list[Manifest]:
    """Structured resources (``ResourceList.resources`` or ``SimulateRequest.upserts``)."""
    if not resources:
        raise InvalidArgument("resources: at least one resource is required", field="resources")
    _check_count(len(resources), limits, field="resources")
    tops: list[Any] = []
    versions: list[str] = []
    for i, resource in enumerate(resources):
        codec.kind_of_resource(resource, field=f"resources[{i}]")
        versions.append(codec.inner(resource).metadata.resource_version)
        document = codec.resource_to_document(resource)
        _pop_resource_version(document)
        tops.append(document)
    return _manifests(tops, "<resources>", versions, limits)


def _manifests(
    tops: list[Any], source: str, versions: list[str], limits: LimitSettings
) -> list[Manifest]:
    raws = _flatten(tops)
    if not raws:
        raise InvalidArgument(f"{source}: no documents to apply", field="yaml.text")
    _check_count(len(raws), limits, field="yaml.text")
    # Re-serialized without resourceVersion; empty documents stay (as null), so the loader's
    # document numbers are those of the input.
    documents = parse_documents([(source, yaml.safe_dump_all(tops, sort_keys=False))])
    if len(documents) != len(raws):  # both flatten `v1 List` the same way
        raise AssertionError("loader and manifest parser disagree on the document count")
    out: list[Manifest] = []
    for index, (doc, raw, version) in enumerate(zip(documents, raws, versions, strict=True)):
        kind = _KIND_OF_DOCUMENT.get(doc.kind)
        if kind is None:
            raise DocumentError(
                f"{doc.kind} is not applied: processing units are registered by their "
                "enforcer (RegisterPu)",
                source=source,
                index=doc.index,
                field="kind",
                reason="KIND_NOT_APPLICABLE",
            )
        meta = raw.get("metadata") if isinstance(raw, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        obj: DomainObject = doc.obj  # type: ignore[assignment]  # kinds checked above
        resource = codec.resource_from_domain(
            obj,
            labels=_strings(meta.get("labels")),
            annotations=_strings(meta.get("annotations")),
        )
        _, namespace, name = codec.ref_of(resource)
        out.append(
            Manifest(
                index=index,
                kind=kind,
                namespace=namespace,
                name=name,
                resource=resource,
                obj=obj,
                resource_version=version,
                source=source,
                document=doc.index,
            )
        )
    return out


def _check_count(count: int, limits: LimitSettings, *, field: str) -> None:
    if count > limits.max_documents:
        raise InvalidArgument(
            f"{field}: {count} documents exceed the limit of {limits.max_documents} per "
            "request (limits.max_documents); split the input",
            field=field,
            reason="TOO_MANY_DOCUMENTS",
            metadata={"limit": str(limits.max_documents), "count": str(count)},
        )


def _flatten(tops: list[Any]) -> list[Any]:
    """Top-level documents with ``v1 List`` items expanded and empty documents dropped: the
    order in which ``parse_documents`` returns documents."""
    out: list[Any] = []
    for raw in tops:
        if raw is None:
            continue
        if isinstance(raw, dict) and (raw.get("apiVersion"), raw.get("kind")) == ("v1", "List"):
            items = raw.get("items")
            out.extend(_flatten(items if isinstance(items, list) else []))
        else:
            out.append(raw)
    return out


def _pop_resource_version(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or "resourceVersion" not in meta:
        return ""
    value = meta.pop("resourceVersion")
    return "" if value is None else str(value)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
