"""``PolicyService`` servicer: every rpc but ``WatchPolicy`` (delegated to the distribution
subsystem through :class:`PolicyDistribution`) and ``Suggest`` (delegated to
``api.flow_service``, over this replica's flow store).

Handlers translate messages and call the repository (writes, consistent reads) or the state
mirror (decisions at the live revision). They raise ``trustwire.errors``; the runtime maps them
to status codes. ``current_caller()`` is ``None`` only on servers without mutual TLS (local
development and tests), which are then trusted as an admin would be.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import grpc
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trustwire.api.common.v1 import pagination_pb2 as pagination_pb
from trustwire.api.common.v1 import workload_pb2 as workload_pb
from trustwire.api.policy.v1 import enforcer_pb2 as enforcer_pb
from trustwire.api.policy.v1 import policy_service_pb2 as service_pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.errors import AlreadyExists, InvalidArgument, PermissionDenied, TrustwireError
from trustwire.policy import Cluster, PolicyEngine, Scores, Workload
from trustwire.runtime import Caller, Role, current_caller

from .. import codec, impact
from ..codec import Kind
from ..manifests import parse_resources, parse_yaml
from ..repository import ChangeType, PolicyRepository, WriteResult, filter_digest
from ..settings import LimitSettings
from ..state import StateMirror, StateSnapshot
from . import convert, flow_service
from .apply_errors import register_apply_errors

__all__ = ["PolicyDistribution", "PolicyServicer"]

_ID = re.compile(r"^[A-Za-z0-9._-]{1,253}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# How long Apply waits for this replica's mirror to see its own write (read-your-writes for a
# following Explain on the same replica); best effort, never an error.
_OWN_WRITE_WAIT_S = 2.0
_PROPAGATOR = TraceContextTextMapPropagator()


class PolicyDistribution(Protocol):
    """The seam to the distribution subsystem (``trustwire_policy.distribution``).

    ``watch`` serves one ``WatchPolicy`` stream: it consumes the enforcer's requests
    (subscription, then acks) and yields responses until the stream ends; the servicer has
    already authorized the caller's role (``enforcer``), ``caller`` is ``None`` only without
    mutual TLS. Closing the returned iterator (client gone) must release everything.
    """

    def watch(self, requests: AsyncIterator[Any], caller: Caller | None) -> AsyncIterator[Any]: ...


class PolicyServicer(service_grpc.PolicyServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        repository: PolicyRepository,
        mirror: StateMirror,
        *,
        limits: LimitSettings | None = None,
        trust_domain: str = "",
        distribution: PolicyDistribution | None = None,
        flows: flow_service.FlowCollector | None = None,
    ) -> None:
        self.repository = repository
        self.flows = flows
        self.mirror = mirror
        self.limits = limits or LimitSettings()
        self.trust_domain = trust_domain
        self.distribution = distribution
        # Since start, for metrics: Apply calls by (mode, result reason or "OK").
        self.applies: collections.Counter[tuple[str, str]] = collections.Counter()
        # Apply's statuses list every document problem (ApplyErrors), as the proto promises.
        register_apply_errors()

    # ------------------------------------------------------------------ policy resources

    async def Apply(self, request: Any, context: Any) -> Any:
        try:
            response = await self._apply(request)
        except TrustwireError as error:
            self.applies["dry_run" if request.dry_run else "write", error.reason] += 1
            raise
        self.applies["dry_run" if request.dry_run else "write", "OK"] += 1
        return response

    async def _apply(self, request: Any) -> Any:
        which = request.WhichOneof("input")
        if which == "yaml":
            manifests = parse_yaml(request.yaml.text, request.yaml.source_name, self.limits)
        elif which == "resources":
            self._check_size(request, "resources")
            manifests = parse_resources(request.resources.resources, self.limits)
        else:
            raise InvalidArgument("input: yaml or resources is required", field="input")
        result = await self.repository.apply(
            manifests, dry_run=request.dry_run, traceparent=_traceparent()
        )
        response = service_pb.ApplyResponse(
            changes=[convert.change_to_proto(c) for c in result.changes],
            revision=await self._effective_revision(result),
        )
        if request.dry_run:
            upserts = [
                c.manifest.obj
                for c in result.changes
                if c.manifest is not None and c.change != ChangeType.UNCHANGED
            ]
            response.impacts.extend(await self._impacts(upserts, ()))
        return response

    async def GetPolicy(self, request: Any, context: Any) -> Any:
        kind, namespace, name = _ref(request.ref, "ref")
        resource = await self.repository.get(kind, namespace, name)
        return service_pb.GetPolicyResponse(resource=resource)

    async def ListPolicies(self, request: Any, context: Any) -> Any:
        kinds: list[Kind] = []
        for i, value in enumerate(request.kinds):
            if value == 0:  # UNSPECIFIED: every policy kind
                kinds += [Kind.NETWORK_ACCESS_POLICY, Kind.KUBERNETES_NETWORK_POLICY]
            else:
                kinds.append(Kind.from_resource_kind(value, field=f"kinds[{i}]"))
        if not kinds:
            kinds = [Kind.NETWORK_ACCESS_POLICY, Kind.KUBERNETES_NETWORK_POLICY]
        selector = (
            codec.selector_from_proto(request.label_selector, field="label_selector")
            if request.HasField("label_selector")
            else None
        )
        page = await self.repository.list_resources(
            list(dict.fromkeys(kinds)),
            namespace=request.namespace,
            tier=request.tier,
            selector=selector,
            page_size=self._page_size(request.page),
            page_token=request.page.page_token,
            filter_digest=filter_digest(request),
        )
        return service_pb.ListPoliciesResponse(
            resources=list(page.items),
            page=pagination_pb.PageResponse(
                next_page_token=page.next_token, revision=page.revision
            ),
        )

    async def DeletePolicy(self, request: Any, context: Any) -> Any:
        kind, namespace, name = _ref(request.ref, "ref")
        result = await self.repository.delete(
            kind,
            namespace,
            name,
            resource_version=request.resource_version,
            dry_run=request.dry_run,
            traceparent=_traceparent(),
        )
        (change,) = result.changes
        response = service_pb.DeletePolicyResponse(
            change=convert.change_to_proto(change), revision=result.revision
        )
        if request.dry_run:
            response.impacts.extend(await self._impacts((), [(kind, namespace, name)]))
        return response

    # --------------------------------------------------------------- explain, simulate

    async def Explain(self, request: Any, context: Any) -> Any:
        if not request.HasField("connection"):
            raise InvalidArgument("connection is required", field="connection")
        snapshot = (
            await self.mirror.state_at(request.revision)
            if request.revision
            else self.mirror.current
        )
        connection = convert.parse_connection(snapshot, request.connection, "connection")
        engine = _engine_with(snapshot, [connection.source, connection.destination])
        scores = Scores(
            reputation=(request.reputation_score if request.HasField("reputation_score") else 1.0),
            anomaly=request.behaviour_score if request.HasField("behaviour_score") else 0.0,
        )
        decision = engine.decide(
            connection.source.endpoint(engine.cluster),
            connection.destination.endpoint(engine.cluster),
            connection.protocol,
            connection.port,
            source_scores=scores,
        )
        return service_pb.ExplainResponse(explanation=convert.explanation(decision))

    async def Simulate(self, request: Any, context: Any) -> Any:
        self._check_size(request, "upserts")
        limit = self.limits.max_impact_decisions
        if len(request.connections) > limit:
            raise InvalidArgument(
                f"connections: {len(request.connections)} exceed the limit of {limit} "
                "(limits.max_impact_decisions)",
                field="connections",
                reason="REQUEST_TOO_LARGE",
            )
        snapshot = self.mirror.current
        upserts = (
            [m.obj for m in parse_resources(request.upserts, self.limits)]
            if request.upserts
            else []
        )
        deletions = [_ref(ref, f"deletions[{i}]") for i, ref in enumerate(request.deletions)]
        after_cluster, _ = impact.cluster_with(snapshot.cluster, upserts, deletions)
        connections = [
            convert.parse_connection(snapshot, c, f"connections[{i}]")
            for i, c in enumerate(request.connections)
        ]
        hypothetical = [
            spec
            for c in connections
            for spec in (c.source, c.destination)
            if spec.hypothetical is not None
        ]
        before = _engine_with(snapshot, hypothetical)
        after = PolicyEngine(_with_workloads(after_cluster, hypothetical))
        response = service_pb.SimulateResponse(revision=snapshot.revision)
        for message, c in zip(request.connections, connections, strict=True):
            old = before.decide(
                c.source.endpoint(before.cluster),
                c.destination.endpoint(before.cluster),
                c.protocol,
                c.port,
            )
            new = after.decide(
                c.source.endpoint(after.cluster),
                c.destination.endpoint(after.cluster),
                c.protocol,
                c.port,
            )
            response.impacts.append(
                service_pb.FlowImpact(
                    connection=message,
                    before=convert.explanation(old),
                    after=convert.explanation(new),
                )
            )
        return response

    async def Suggest(self, request: Any, context: Any) -> Any:
        if self.flows is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "Suggest needs a flow store; this server has none"
            )
            return None
        return await flow_service.suggest_response(request, self.flows)

    # ----------------------------------------------------------------------------- PUs

    async def RegisterPu(self, request: Any, context: Any) -> Any:
        if not request.HasField("pu"):
            raise InvalidArgument("pu is required", field="pu")
        pu = pu_pb.ProcessingUnit()
        pu.CopyFrom(request.pu)
        caller = current_caller()
        if caller is not None:
            if pu.enforcer_id and pu.enforcer_id != caller.name:
                raise PermissionDenied(
                    f"enforcer {caller.name} may register PUs only under its own id, "
                    f"not {pu.enforcer_id}",
                    reason="ENFORCER_MISMATCH",
                    metadata={"enforcer_id": pu.enforcer_id, "caller": caller.spiffe_id},
                )
            pu.enforcer_id = caller.name
        _validate_pu(pu)
        owner = self._owner_of(pu.id) if pu.id else None
        if owner is not None and owner != pu.enforcer_id:
            raise AlreadyExists(
                f"PU {pu.id} is registered by enforcer {owner}",
                reason="PU_OF_ANOTHER_ENFORCER",
                metadata={"pu_id": pu.id, "enforcer_id": owner},
            )
        pu.labels["enforcer"] = pu.enforcer_id
        if self.trust_domain:
            pu.labels["trust-domain"] = self.trust_domain
        if pu.fail_mode == pu_pb.FAIL_MODE_UNSPECIFIED:
            pu.fail_mode = pu_pb.FAIL_MODE_CLOSED
        stored = await self.repository.register_pu(pu)
        return service_pb.RegisterPuResponse(pu=stored)

    async def DeregisterPu(self, request: Any, context: Any) -> Any:
        pu_id = request.pu_id
        if not pu_id or not _ID.match(pu_id):
            raise InvalidArgument("pu_id: a PU id is required", field="pu_id")
        caller = current_caller()
        owner = self._owner_of(pu_id)
        if caller is not None and caller.role is Role.ENFORCER:
            if owner is not None and owner != caller.name:
                raise PermissionDenied(
                    f"PU {pu_id} belongs to enforcer {owner}, not {caller.name}",
                    reason="ENFORCER_MISMATCH",
                    metadata={"pu_id": pu_id},
                )
            owner = caller.name
        if owner is None:
            owner = await self.repository.find_pu_enforcer(pu_id)
        if owner is None:
            return service_pb.DeregisterPuResponse(revision=await self.repository.store.revision())
        revision = await self.repository.deregister_pu(owner, pu_id)
        return service_pb.DeregisterPuResponse(revision=revision)

    async def ListPus(self, request: Any, context: Any) -> Any:
        enforcer_id = request.enforcer_id
        caller = current_caller()
        if caller is not None and caller.role is Role.ENFORCER:
            if enforcer_id and enforcer_id != caller.name:
                raise PermissionDenied(
                    f"enforcer {caller.name} may list only its own PUs",
                    reason="ENFORCER_MISMATCH",
                )
            enforcer_id = caller.name
        selector = (
            codec.selector_from_proto(request.label_selector, field="label_selector")
            if request.HasField("label_selector")
            else None
        )
        page = await self.repository.list_pus(
            enforcer_id=enforcer_id,
            namespace=request.namespace,
            selector=selector,
            page_size=self._page_size(request.page),
            page_token=request.page.page_token,
            filter_digest=filter_digest(request),
        )
        return service_pb.ListPusResponse(
            pus=list(page.items),
            page=pagination_pb.PageResponse(
                next_page_token=page.next_token, revision=page.revision
            ),
        )

    # ------------------------------------------------------------------------ enforcers

    async def RegisterEnforcer(self, request: Any, context: Any) -> Any:
        if not request.HasField("enforcer"):
            raise InvalidArgument("enforcer is required", field="enforcer")
        enforcer = enforcer_pb.Enforcer()
        enforcer.CopyFrom(request.enforcer)
        caller = current_caller()
        if caller is not None:
            if enforcer.id and enforcer.id != caller.name:
                raise PermissionDenied(
                    f"enforcer {caller.name} may register only itself, not {enforcer.id}",
                    reason="ENFORCER_MISMATCH",
                )
            enforcer.id = caller.name
        if not enforcer.id or not _ID.match(enforcer.id):
            raise InvalidArgument("enforcer.id: an enforcer id is required", field="enforcer.id")
        stored = await self.repository.register_enforcer(enforcer)
        return service_pb.RegisterEnforcerResponse(enforcer=stored)

    async def ListEnforcers(self, request: Any, context: Any) -> Any:
        snapshot = self.mirror.current
        current = snapshot.revision
        views, page = await self.repository.list_enforcers(
            page_size=self._page_size(request.page),
            page_token=request.page.page_token,
            filter_digest=filter_digest(request),
        )
        response = service_pb.ListEnforcersResponse(
            current_revision=current,
            page=pagination_pb.PageResponse(
                next_page_token=page.next_token, revision=page.revision
            ),
        )
        for view in views:
            enforcer = enforcer_pb.Enforcer()
            enforcer.CopyFrom(view.enforcer)
            enforcer.status.CopyFrom(view.status)
            status = enforcer.status
            status.lag_revisions = max(0, current - status.acked_revision)
            status.pu_count = len(snapshot.pus_by_enforcer.get(enforcer.id, ()))
            if request.only_lagging and status.lag_revisions == 0:
                continue
            response.enforcers.append(enforcer)
        return response

    # --------------------------------------------------------------------- distribution

    async def WatchPolicy(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        if self.distribution is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "policy distribution is not enabled")
            return
        stream = self.distribution.watch(request_iterator, current_caller())
        try:
            async for response in stream:
                yield response
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    # ------------------------------------------------------------------------- helpers

    def _page_size(self, page: Any) -> int:
        size = int(page.page_size) or self.limits.default_page_size
        return max(1, min(size, self.limits.max_page_size))

    def _check_size(self, request: Any, field: str) -> None:
        size = request.ByteSize()
        if size > self.limits.max_request_bytes:
            raise InvalidArgument(
                f"{field}: {size} bytes exceed the limit of {self.limits.max_request_bytes} "
                "bytes per request (limits.max_request_bytes)",
                field=field,
                reason="REQUEST_TOO_LARGE",
                metadata={"limit": str(self.limits.max_request_bytes)},
            )

    def _owner_of(self, pu_id: str) -> str | None:
        if not self.mirror.ready:
            return None
        record = self.mirror.current.pus.get(pu_id)
        return record.enforcer_id if record is not None else None

    async def _effective_revision(self, result: WriteResult) -> int:
        """The revision to report: the write's; when nothing was written, the newest revision
        among the resources (what enforcers must have acked for them to be in effect)."""
        if result.written:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.mirror.wait_for_revision(result.revision), _OWN_WRITE_WAIT_S
                )
            return result.revision
        revisions = [codec.inner(c.before).metadata.revision for c in result.changes if c.before]
        return max(revisions) if revisions and not _any_new(result) else result.revision

    async def _impacts(
        self,
        upserts: Sequence[Any],
        deletions: Sequence[tuple[Kind, str, str]],
    ) -> list[Any]:
        snapshot = self.mirror.current
        after_cluster, touched = impact.cluster_with(snapshot.cluster, upserts, deletions)
        changes, _ = impact.changed_flows(
            snapshot.engine,
            PolicyEngine(after_cluster),
            touched,
            max_decisions=self.limits.max_impact_decisions,
            max_impacts=self.limits.max_impacts,
        )
        return [
            service_pb.FlowImpact(
                connection=convert.connection_of(
                    snapshot, c.source.key, c.destination.key, c.protocol, c.port
                ),
                before=convert.explanation(c.before),
                after=convert.explanation(c.after),
            )
            for c in changes
        ]


def _traceparent() -> str:
    """The W3C traceparent of the current span (the RPC's server span): stored with the write
    so that every enforcer's apply of it links back to this call ("" when not traced)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def _any_new(result: WriteResult) -> bool:
    return any(c.change != ChangeType.UNCHANGED for c in result.changes)


def _ref(message: Any, field: str) -> tuple[Kind, str, str]:
    kind = Kind.from_resource_kind(message.kind, field=f"{field}.kind")
    if not message.name:
        raise InvalidArgument(f"{field}.name: required", field=f"{field}.name")
    namespace = message.namespace if kind.namespaced else ""
    if kind is Kind.KUBERNETES_NETWORK_POLICY and not namespace:
        namespace = "default"
    return kind, namespace, message.name


def _with_workloads(cluster: Cluster, specs: Sequence[convert.EndpointSpec]) -> Cluster:
    extra: list[Workload] = [s.hypothetical for s in specs if s.hypothetical is not None]
    if not extra:
        return cluster
    return cluster.with_changes(workloads=cluster.workloads + tuple(extra))


def _engine_with(snapshot: StateSnapshot, specs: Sequence[convert.EndpointSpec]) -> PolicyEngine:
    """The snapshot's shared engine, or a private one when hypothetical workloads join."""
    if all(s.hypothetical is None for s in specs):
        return snapshot.engine
    return PolicyEngine(_with_workloads(snapshot.cluster, specs))


def _validate_pu(pu: Any) -> None:
    if not pu.enforcer_id or not _ID.match(pu.enforcer_id):
        raise InvalidArgument("pu.enforcer_id: an enforcer id is required", field="pu.enforcer_id")
    if pu.id and not _ID.match(pu.id):
        raise InvalidArgument(
            f"pu.id: invalid id {pu.id!r} (letters, digits, '.', '_', '-')", field="pu.id"
        )
    if not pu.namespace or len(pu.namespace) > 63 or not _DNS_LABEL.match(pu.namespace):
        raise InvalidArgument(
            f"pu.namespace: invalid namespace {pu.namespace!r} (a lowercase RFC 1123 label)",
            field="pu.namespace",
        )
    if pu.name and not _ID.match(pu.name):
        raise InvalidArgument(f"pu.name: invalid name {pu.name!r}", field="pu.name")
    if pu.type not in (
        workload_pb.PROCESSING_UNIT_TYPE_POD,
        workload_pb.PROCESSING_UNIT_TYPE_PROCESS,
    ):
        raise InvalidArgument(
            "pu.type: POD or PROCESS is required (external services are ExternalNetworks)",
            field="pu.type",
        )
    for i, ip in enumerate(pu.ips):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(
                f"pu.ips[{i}]: invalid IP address {ip!r}", field=f"pu.ips[{i}]"
            ) from None
    for i, port in enumerate(pu.ports):
        if not 1 <= port.number <= 65535:
            raise InvalidArgument(
                f"pu.ports[{i}].number: must be between 1 and 65535", field=f"pu.ports[{i}].number"
            )
        codec.protocol_from_proto(port.protocol, field=f"pu.ports[{i}].protocol")
