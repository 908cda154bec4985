"""The enforcer side of ``WatchPolicy``: follow one replica, fail over to another, resume.

:class:`PolicyClient` keeps the enforcer's view (in memory; ``on_apply`` persists it or
installs it) and the revision it applied. It subscribes with that revision, applies each
snapshot (after its final part) or delta (only on top of exactly its ``base_revision``), calls
``on_apply`` and acks; a failing ``on_apply`` or a delta on the wrong base is NACKed and the
previous view stays in effect. On any stream failure it reconnects to the next replica address
after a bounded exponential backoff with jitter, and resumes from its applied revision, so a
failover costs one (often empty) delta, not a snapshot.

Applied responses are counted in :attr:`PolicyClient.log` (nonce, kind, base and revision), so
tests can prove that no delta was skipped or applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trustwire.api.common.v1 import error_pb2
from trustwire.api.policy.v1 import distribution_pb2, policy_service_pb2, policy_service_pb2_grpc
from trustwire.errors import TrustwireError
from trustwire.policy.views import EnforcerView, apply_delta
from trustwire.runtime import create_channel

from .codec import delta_from_proto, view_from_snapshot
from .stream import BASE_REVISION_MISMATCH

__all__ = ["AppliedUpdate", "Backoff", "PolicyClient"]

_log = logging.getLogger("trustwire.policy.distribution.client")
_propagator = TraceContextTextMapPropagator()

OnApply = Callable[[EnforcerView, int], Awaitable[None] | None]


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial * 2**attempt`` capped at ``maximum``, each drawn uniformly
    from its upper half (jitter spreads a crowd of enforcers losing the same replica)."""

    initial: float = 0.05
    maximum: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** min(attempt, 30)))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class AppliedUpdate:
    nonce: str
    kind: str  # "snapshot" or "delta"
    base_revision: int  # for deltas; 0 for snapshots
    revision: int
    address: str
    reason: int = 0  # SnapshotReason for snapshots


class PolicyClient:
    def __init__(
        self,
        enforcer_id: str,
        addresses: Sequence[str],
        *,
        on_apply: OnApply | None = None,
        resume_revision: int = 0,
        view: EnforcerView | None = None,
        channel_factory: Callable[[str], grpc.aio.Channel] | None = None,
        backoff: Backoff = Backoff(),
        seed: int | None = None,
        keep_log: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("at least one replica address is required")
        self.enforcer_id = enforcer_id
        self.addresses = list(addresses)
        self._on_apply = on_apply
        self._channel_factory = channel_factory or (lambda address: create_channel(address))
        self._backoff = backoff
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not a secret
        self._keep_log = keep_log
        # Apply spans (linked to the write spans of what they apply); the global provider
        # unless the caller passes its own.
        self._tracer = trace.get_tracer(
            "trustwire.policy.distribution", tracer_provider=tracer_provider
        )
        # The view in effect and its revision (resume_revision without a view: the enforcer
        # holds state on disk the caller did not hand over; deltas still apply on top of it
        # only if a view is given, otherwise the first delta is NACKed and a snapshot follows).
        self.view = view
        self.revision = resume_revision if view is not None or resume_revision else 0
        self.log: list[AppliedUpdate] = []
        self.nacks: list[tuple[str, str]] = []  # (nonce, reason)
        self.connects = 0
        self.connected_address: str | None = None
        self._next = self._rng.randrange(len(self.addresses))
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._parts: list[distribution_pb2.PolicySnapshot] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"policy-client-{self.enforcer_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_for(self, predicate: Callable[[PolicyClient], bool], timeout: float) -> None:  # noqa: ASYNC109 - a bound, not cancellation
        """Wait until ``predicate(self)`` holds (checked on every applied update)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

    async def run(self) -> None:
        attempt = 0
        while True:
            address = self.addresses[self._next % len(self.addresses)]
            self._next += 1
            try:
                if await self._follow(address):
                    attempt = 0
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, TrustwireError, OSError) as error:
                _log.info("policy stream to %s ended: %s", address, _describe(error))
            finally:
                self.connected_address = None
            delay = self._backoff.delay(attempt, self._rng)
            attempt += 1
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ one stream

    async def _follow(self, address: str) -> bool:
        """Follow one stream until it ends; True when at least one response arrived."""
        progressed = False
        async with self._channel_factory(address) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            call: Any = stub.WatchPolicy()
            try:
                await call.write(
                    policy_service_pb2.WatchPolicyRequest(
                        subscription=distribution_pb2.PolicySubscription(
                            enforcer_id=self.enforcer_id, resume_revision=self.revision
                        )
                    )
                )
                self.connects += 1
                self.connected_address = address
                self._parts = []
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:  # type: ignore[attr-defined]
                        return progressed
                    progressed = True
                    ack = await self._handle(response, address)
                    if ack is not None:
                        await call.write(policy_service_pb2.WatchPolicyRequest(ack=ack))
            finally:
                call.cancel()

    async def _handle(
        self, response: policy_service_pb2.WatchPolicyResponse, address: str
    ) -> distribution_pb2.PolicyAck | None:
        kind = response.WhichOneof("update")
        links = _links([response.traceparent, *response.write_traceparents])
        with self._tracer.start_as_current_span(
            "policy.apply",
            links=links,
            attributes={
                "trustwire.enforcer_id": self.enforcer_id,
                "trustwire.revision": response.revision,
                "trustwire.update": kind or "",
            },
        ):
            if kind == "snapshot":
                self._parts.append(response.snapshot)
                if not response.snapshot.final_part:
                    return None  # parts are applied together and only the last is acked
                parts, self._parts = self._parts, []
                view = view_from_snapshot(self.enforcer_id, parts)
                base = 0
                reason = int(response.snapshot.reason)
            elif kind == "delta":
                delta = response.delta
                if self.view is None or delta.base_revision != self.revision:
                    return self._nack(
                        response,
                        BASE_REVISION_MISMATCH,
                        f"delta on {delta.base_revision}, enforcer at {self.revision}",
                    )
                view = apply_delta(self.view, delta_from_proto(delta))
                base = delta.base_revision
                reason = 0
            else:
                return self._nack(response, "MALFORMED_RESPONSE", "no update in response")
            try:
                if self._on_apply is not None:
                    result = self._on_apply(view, response.revision)
                    if inspect.isawaitable(result):
                        await result
            except Exception as error:
                return self._nack(response, "APPLY_FAILED", str(error))
            async with self._changed:
                self.view = view
                self.revision = response.revision
                if self._keep_log:
                    self.log.append(
                        AppliedUpdate(
                            response.nonce, kind, base, response.revision, address, reason
                        )
                    )
                self._changed.notify_all()
            return distribution_pb2.PolicyAck(
                response_nonce=response.nonce, applied_revision=response.revision
            )

    def _nack(
        self, response: policy_service_pb2.WatchPolicyResponse, reason: str, message: str
    ) -> distribution_pb2.PolicyAck:
        self._parts = []
        self.nacks.append((response.nonce, reason))
        return distribution_pb2.PolicyAck(
            response_nonce=response.nonce,
            applied_revision=self.revision,
            error_detail=error_pb2.ErrorDetail(reason=reason, message=message[:1000]),
        )


def _links(traceparents: Sequence[str]) -> list[Link]:
    """One link per distinct write span named (invalid values are ignored)."""
    links: list[Link] = []
    seen: set[tuple[int, int]] = set()
    for traceparent in traceparents:
        if not traceparent:
            continue
        context = _propagator.extract({"traceparent": traceparent})
        span_context = trace.get_current_span(context).get_span_context()
        key = (span_context.trace_id, span_context.span_id)
        if span_context.is_valid and key not in seen:
            seen.add(key)
            links.append(Link(span_context))
    return links


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
