"""The server side of ``WatchPolicy``: one enforcer's stream, Envoy ADS style.

Protocol (``policy_service.proto`` states it for clients):

1. The first request is a ``PolicySubscription``; its ``enforcer_id`` must be the caller's
   (the node of ``spiffe://<td>/enforcer/<node>``), else ``PERMISSION_DENIED``.
2. The first response is a snapshot of the enforcer's view at the newest revision (reason
   INITIAL), or, with ``resume_revision`` R, a delta from its view at R (possibly empty: it
   then only confirms the enforcer is current). R compacted away: a snapshot with reason
   REVISION_COMPACTED; R newer than the store (another cluster's state): reason RESYNC.
3. At most one response is unacked. While one is, new revisions only move the hub's "latest"
   pointer: nothing queues, so a slow enforcer gets one delta covering everything it missed
   (coalesced, latest wins) and a stalled one costs an idle task and its last acked view.
4. When nothing is in flight and the newest revision is newer than what the stream last
   considered, the enforcer's view there is compared with its last ACKED view; if different,
   one delta (base = the acked revision) tagged with the newest revision is sent, carrying
   the traceparents of the writes it covers; if equal, nothing is sent and the newest
   revision is recorded as acked (the enforcer is converged there). Stream open and end are
   recorded as the enforcer's connection state.
5. ACK (nonce of the response in flight, no error): the response's view becomes the basis and
   ``record_ack`` stores the revision. NACK: ``record_ack`` stores the enforcer's last good
   revision with the error; the stream stays, the basis stays the last acked view, and the
   next change is sent as a delta from it. A NACK with reason ``BASE_REVISION_MISMATCH`` (the
   enforcer does not hold the basis) is answered with a snapshot (reason RESYNC) at once.
   Acks of other nonces are ignored (superseded or duplicate).

Every response carries a nonce unique to this replica (``<replica>-<stream>-<n>``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from trustwire.api.policy.v1 import distribution_pb2, policy_service_pb2
from trustwire.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from trustwire.policy.views import EnforcerView, diff
from trustwire.runtime import Caller, Role

from .codec import delta_to_proto, snapshot_parts
from .hub import RevisionViews, ViewHub
from .seam import AckError, AckRecorder

__all__ = ["BASE_REVISION_MISMATCH", "PolicyDistribution", "StreamStatus"]

_log = logging.getLogger("trustwire.policy.distribution")

BASE_REVISION_MISMATCH = "BASE_REVISION_MISMATCH"
REVISION_COMPACTED = "REVISION_COMPACTED"


@dataclass
class _Sent:
    nonce: str
    view: EnforcerView
    revision: int
    snapshot: bool


@dataclass
class StreamStatus:
    """What one live stream knows (for ``trustwire get enforcers`` and tests)."""

    enforcer_id: str
    acked_revision: int = 0
    # The newest revision at which the enforcer's acked view is known to be current (its view
    # did not change since): what convergence waits for.
    in_sync_revision: int = 0
    last_error: AckError | None = None
    responses: int = 0


class PolicyDistribution:
    """Serves ``WatchPolicy`` for every enforcer of this replica; see the module docstring.

    ``max_snapshot_part_bytes`` bounds each snapshot part; ``catch_up_timeout`` is how long a
    subscription resuming from a revision this replica has not seen yet waits for it.
    """

    def __init__(
        self,
        hub: ViewHub,
        recorder: AckRecorder,
        *,
        replica_id: str = "",
        max_snapshot_part_bytes: int = 1 << 20,
        subscription_timeout: float = 30.0,
        catch_up_timeout: float = 5.0,
    ) -> None:
        self.hub = hub
        self._recorder = recorder
        self._replica = replica_id or secrets.token_hex(3)
        self._max_part = max_snapshot_part_bytes
        self._subscription_timeout = subscription_timeout
        self._catch_up_timeout = catch_up_timeout
        self._stream_ids = itertools.count(1)
        self.streams: dict[int, StreamStatus] = {}
        self._streams_changed = asyncio.Condition()
        # Since start, for metrics: acks by result ("ack"/"nack"), responses by kind.
        self.acks: collections.Counter[str] = collections.Counter()
        self.responses: collections.Counter[str] = collections.Counter()

    def status(self, enforcer_id: str) -> list[StreamStatus]:
        return [s for s in self.streams.values() if s.enforcer_id == enforcer_id]

    async def flush(self) -> None:
        """Return once the convergence recorded so far is stored (when the recorder writes
        behind; tests and shutdown)."""
        flush = getattr(self._recorder, "flush", None)
        if flush is not None:
            await flush()

    async def close(self) -> None:
        """Stop following the state (streams end with their gRPC calls) and store the
        convergence recorded so far."""
        await self.hub.stop()
        close = getattr(self._recorder, "close", None)
        if close is not None:
            await close()

    async def watch(
        self,
        requests: AsyncIterator[policy_service_pb2.WatchPolicyRequest],
        caller: Caller | None = None,
    ) -> AsyncIterator[policy_service_pb2.WatchPolicyResponse]:
        """One WatchPolicy stream: consumes the requests, yields the responses. ``caller`` is
        the authenticated peer; ``None`` only on servers without mutual TLS, which trust
        every caller (as the rest of the policy service does)."""
        iterator = aiter(requests)
        try:
            first = await asyncio.wait_for(anext(iterator), self._subscription_timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise InvalidArgument(
                "no PolicySubscription received", field="subscription", reason="NO_SUBSCRIPTION"
            ) from None
        if first.WhichOneof("message") != "subscription":
            raise InvalidArgument(
                "the first WatchPolicyRequest must be a subscription", field="subscription"
            )
        subscription = first.subscription
        enforcer_id = subscription.enforcer_id
        if not enforcer_id:
            raise InvalidArgument("enforcer_id is required", field="subscription.enforcer_id")
        if subscription.resume_revision < 0:
            raise InvalidArgument(
                "resume_revision must be >= 0", field="subscription.resume_revision"
            )
        _authorize(caller, enforcer_id)
        stream_id = next(self._stream_ids)
        stream = _Stream(
            self, enforcer_id, f"{self._replica}-{stream_id}", subscription.resume_revision
        )
        self.streams[stream_id] = stream.status
        await self._record_connection(enforcer_id, True)
        reader = asyncio.create_task(stream.read(iterator), name=f"watch-reader-{enforcer_id}")
        try:
            async for response in stream.responses():
                yield response
        finally:
            reader.cancel()
            self.hub.unsubscribe(stream.wake)
            del self.streams[stream_id]
            # Another stream of the same enforcer on this replica keeps it connected.
            if not self.status(enforcer_id):
                await self._record_connection(enforcer_id, False)
            async with self._streams_changed:
                self._streams_changed.notify_all()

    async def wait_disconnected(self, enforcer_id: str) -> None:
        """Return once ``enforcer_id`` has no stream on this replica (its end recorded)."""
        async with self._streams_changed:
            await self._streams_changed.wait_for(lambda: not self.status(enforcer_id))

    async def _record_connection(self, enforcer_id: str, connected: bool) -> None:
        try:
            await self._recorder.record_connection(enforcer_id, connected, self._replica)
        except Exception:
            _log.warning("cannot record the connection of %s", enforcer_id, exc_info=True)


def _authorize(caller: Caller | None, enforcer_id: str) -> None:
    if caller is None:
        return
    if caller.role is not Role.ENFORCER or caller.name != enforcer_id:
        raise PermissionDenied(
            f"{caller} may not subscribe as enforcer {enforcer_id!r}",
            reason="ENFORCER_MISMATCH",
            metadata={"enforcer_id": enforcer_id, "caller": str(caller)},
        )


class _Stream:
    def __init__(
        self, owner: PolicyDistribution, enforcer_id: str, nonce_prefix: str, resume: int
    ) -> None:
        self.owner = owner
        self.hub = owner.hub
        self.enforcer_id = enforcer_id
        self.status = StreamStatus(enforcer_id)
        self._nonce_prefix = nonce_prefix
        self._nonces = itertools.count(1)
        self._resume = resume
        self.wake = asyncio.Event()
        self.inflight: _Sent | None = None
        self.acked: _Sent | None = None
        self.considered = 0  # newest revision already compared against the basis
        self.resync = False  # send a snapshot at the next opportunity
        self.failure: BaseException | None = None
        self.client_done = False

    # ------------------------------------------------------------------ requests

    async def read(self, iterator: AsyncIterator[policy_service_pb2.WatchPolicyRequest]) -> None:
        try:
            async for request in iterator:
                if request.WhichOneof("message") != "ack":
                    raise InvalidArgument("only acks may follow the subscription", field="ack")
                await self._on_ack(request.ack)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failure = error
        self.client_done = True
        self.wake.set()

    async def _on_ack(self, ack: distribution_pb2.PolicyAck) -> None:
        sent = self.inflight
        if sent is None or ack.response_nonce != sent.nonce:
            _log.debug("ignoring ack of nonce %s", ack.response_nonce)
            return
        self.inflight = None
        error: AckError | None = None
        self.owner.acks["nack" if ack.HasField("error_detail") else "ack"] += 1
        if ack.HasField("error_detail"):
            detail = ack.error_detail
            error = AckError(detail.reason, detail.message, dict(detail.metadata))
            self.status.last_error = error
            if detail.reason == BASE_REVISION_MISMATCH:
                # The enforcer does not hold our basis: only a snapshot can help.
                self.acked = None
                self.resync = True
            # Otherwise the basis stays the last acked view and ``considered`` the nacked
            # revision: the next newer revision is sent as a delta from the acked view.
            revision = ack.applied_revision
        else:
            self.acked = sent
            self.status.acked_revision = sent.revision
            self.status.in_sync_revision = max(self.status.in_sync_revision, sent.revision)
            revision = sent.revision
        self.wake.set()  # the next response may go out before the ack is stored
        await self._record(revision, error)

    async def _record(self, revision: int, error: AckError | None) -> None:
        try:
            await self.owner._recorder.record_ack(self.enforcer_id, revision, error)
        except Exception:
            _log.warning("cannot record ack of %s at %d", self.enforcer_id, revision, exc_info=True)

    # ------------------------------------------------------------------ responses

    async def responses(self) -> AsyncIterator[policy_service_pb2.WatchPolicyResponse]:
        self.hub.subscribe(self.wake)
        latest = await self.hub.wait_ready()
        for response in await self._first(latest):
            yield response
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.failure is not None:
                raise self.failure
            if self.client_done:
                return
            if self.inflight is not None:
                continue  # at most one unacked response: newer state coalesces meanwhile
            newest = self.hub.latest
            assert newest is not None
            latest = newest
            if self.acked is None or self.resync:
                if self.resync or latest.revision > self.considered:
                    self.resync = False
                    for response in self._snapshot(latest, distribution_pb2.SNAPSHOT_REASON_RESYNC):
                        yield response
                continue
            if latest.revision <= self.considered:
                continue
            self.considered = latest.revision
            view = latest.view(self.enforcer_id)
            basis = self.acked
            if view is basis.view or view == basis.view:
                # Nothing to send: the enforcer's acked view IS its view at this revision, so
                # it has converged here (what ``apply --wait`` and lag wait for). Recorded
                # like an ack; the recorder coalesces a burst per enforcer (latest wins).
                self.status.in_sync_revision = latest.revision
                await self._record(latest.revision, None)
                continue
            yield self._delta(basis.view, basis.revision, view, latest)
            # Let other streams run between views: a burst of revisions costs every stream
            # one view computation, never one long stall of the event loop.
            await asyncio.sleep(0)

    async def _first(self, latest: RevisionViews) -> list[policy_service_pb2.WatchPolicyResponse]:
        resume = self._resume
        if resume == 0:
            return self._snapshot(latest, distribution_pb2.SNAPSHOT_REASON_INITIAL)
        if resume > latest.revision:
            # Another replica served it a newer revision than this one has seen yet (each
            # replica's mirror lags etcd a little): wait to catch up rather than send the
            # enforcer back in time. Still ahead after the wait: state of another store.
            latest = await self._catch_up(resume)
            if resume > latest.revision:
                return self._snapshot(latest, distribution_pb2.SNAPSHOT_REASON_RESYNC)
        try:
            then = await self.hub.at(resume)
        except FailedPrecondition as error:
            if error.reason != REVISION_COMPACTED:
                raise
            return self._snapshot(latest, distribution_pb2.SNAPSHOT_REASON_REVISION_COMPACTED)
        except InvalidArgument:
            return self._snapshot(latest, distribution_pb2.SNAPSHOT_REASON_RESYNC)
        # The hub may have moved while the old state loaded; deltas go to the newest.
        latest = self.hub.latest or latest
        base = then.view(self.enforcer_id)
        return [self._delta(base, resume, latest.view(self.enforcer_id), latest)]

    async def _catch_up(self, revision: int) -> RevisionViews:
        try:
            async with asyncio.timeout(self.owner._catch_up_timeout):
                while (latest := self.hub.latest) is None or latest.revision < revision:
                    await self.wake.wait()
                    self.wake.clear()
        except TimeoutError:
            pass
        self.wake.set()  # re-check in the main loop whatever woke us
        latest = self.hub.latest
        assert latest is not None
        return latest

    def _nonce(self) -> str:
        return f"{self._nonce_prefix}-{next(self._nonces)}"

    def _snapshot(
        self, at: RevisionViews, reason: distribution_pb2.SnapshotReason
    ) -> list[policy_service_pb2.WatchPolicyResponse]:
        view = at.view(self.enforcer_id)
        responses = [
            policy_service_pb2.WatchPolicyResponse(
                nonce=self._nonce(), revision=at.revision, snapshot=part
            )
            for part in snapshot_parts(view, reason, self.owner._max_part, at.encoded)
        ]
        self.considered = at.revision
        self.inflight = _Sent(responses[-1].nonce, view, at.revision, snapshot=True)
        self.status.responses += len(responses)
        self.owner.responses["snapshot"] += 1
        return responses

    def _delta(
        self, base: EnforcerView, base_revision: int, view: EnforcerView, at: RevisionViews
    ) -> policy_service_pb2.WatchPolicyResponse:
        # The writes this delta covers: the enforcer's apply span links to each (the single
        # ``traceparent`` is kept for exactly one write, as before).
        writes = at.traceparents(after=base_revision)
        response = policy_service_pb2.WatchPolicyResponse(
            nonce=self._nonce(),
            revision=at.revision,
            delta=delta_to_proto(diff(base, view), base_revision, at.encoded),
            traceparent=at.state.traceparent if base_revision >= at.previous_revision else "",
            write_traceparents=writes,
        )
        self.considered = max(self.considered, at.revision)
        self.inflight = _Sent(response.nonce, view, at.revision, snapshot=False)
        self.status.responses += 1
        self.owner.responses["delta"] += 1
        return response
