"""Unit tests of the enforcer's edges: authorization table, settings, protobuf conversion,
persisted state, the local API transport and flow reporting."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.identity.pki import TYPICAL_LABELS, make_world, typical_attestation
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.enforcer.v1 import authorization_service_pb2
from trustwire.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from trustwire.flows import ConnectionFacts, FlowDecision, FlowEndpoint, FlowRecord
from trustwire.identity import FiveTuple, ProfileSigner
from trustwire.policy.labels import Labels
from trustwire.policy.model import Action as _Action
from trustwire.policy.model import Direction, Protocol, PuType
from trustwire.policy.views import (
    DirectoryEntry,
    EnforcerEndpoint,
    EnforcerView,
    ExternalNetworkView,
)
from trustwire.runtime import assert_table_covers
from trustwire_enforcer.api.authorization import AUTHORIZATION
from trustwire_enforcer.api.convert import answer_from_pb, answer_to_pb, claimed_five_tuple
from trustwire_enforcer.api.peer_service import egress_of
from trustwire_enforcer.flows import FlowReporter
from trustwire_enforcer.handshake import AuthorizeAnswer
from trustwire_enforcer.local_api import Caller, LocalApiClient, LocalApiServer
from trustwire_enforcer.policy_state import (
    AppliedPolicy,
    ExternalDestination,
    RemoteDestination,
    resolve_destination,
)
from trustwire_enforcer.settings import load
from trustwire_enforcer.state_files import PuFile, StoredPu, ViewFile


def test_every_rpc_of_the_enforcer_channel_has_an_authorization_entry() -> None:
    service = authorization_service_pb2.DESCRIPTOR.services_by_name["AuthorizationService"]
    assert_table_covers(AUTHORIZATION, [service])


def test_settings_load_from_the_environment_and_refuse_unknown_keys() -> None:
    settings = load(
        environ={
            "TRUSTWIRE_ENFORCER_NODE_NAME": "node-1",
            "TRUSTWIRE_ENFORCER_POLICY__ADDRESSES": "p1:8445,p2:8445",
            "TRUSTWIRE_ENFORCER_IDENTITY__CA_SHA256": "ab" * 32,
            "TRUSTWIRE_ENFORCER_FLOWS__WINDOW": "2.5",
        }
    )
    assert settings.node_name == "node-1"
    assert settings.policy.addresses == ("p1:8445", "p2:8445")
    assert settings.flows.window == 2.5
    with pytest.raises(InvalidArgument):
        load(environ={"TRUSTWIRE_ENFORCER_NODE_NAME": "n", "TRUSTWIRE_ENFORCER_NODE": "typo"})


def test_claimed_five_tuple_reads_an_unverified_profile_and_tolerates_garbage() -> None:
    world = make_world()
    issued = world.issuer_a.issue(
        pu_id="shop/web-1",
        enforcer_id="node-1",
        labels=TYPICAL_LABELS,
        attestation=typical_attestation(),
        not_after=world.node1.certificate.not_valid_after_utc,
    )
    five = FiveTuple.of("TCP", "10.0.0.1", 40000, "10.0.0.2", 5432)
    signed = ProfileSigner(world.node1, clock=world.clock).sign(issued.envelope, five)
    assert claimed_five_tuple(signed.envelope) == five
    assert claimed_five_tuple(b"\x00garbage") is None
    assert claimed_five_tuple(b"") is None


def test_authorize_answers_round_trip_through_protobuf() -> None:
    answer = AuthorizeAnswer(
        allowed=True,
        reason="POLICY_ENCRYPT",
        encrypt=True,
        profile=b"",
        server_spiffe_id="spiffe://td/enforcer/node-2",
        preauthorization_ttl=5.0,
        revision=42,
    )
    assert answer_from_pb(answer_to_pb(answer)) == answer
    refused = AuthorizeAnswer(allowed=False, reason="REPLAYED")
    assert answer_from_pb(answer_to_pb(refused)) == refused
    # A reason this build does not know is still a refusal, never an allow.
    unknown = answer_from_pb(answer_to_pb(AuthorizeAnswer(False, "NOT_A_REASON")))
    assert not unknown.allowed
    assert unknown.reason == "PEER_REJECTED"


def _view() -> EnforcerView:
    ip = ipaddress.ip_address
    return EnforcerView(
        enforcer_id="node-1",
        peers=(
            DirectoryEntry("node-2.db", "td", (ip("10.0.2.2"),), "node-2", PuType.POD, ()),
            DirectoryEntry("node-9.x", "td", (ip("10.0.9.2"),), "node-9", PuType.POD, ()),
        ),
        enforcers=(EnforcerEndpoint("node-2", "", ("127.0.0.1:15443",)),),
        external_networks=(
            ExternalNetworkView(
                "",
                "partner",
                Labels({"role": "partner"}),
                (ipaddress.ip_network("203.0.113.0/24"),),
            ),
        ),
    )


def test_the_directory_resolves_enforced_peers_and_external_addresses() -> None:
    policy = AppliedPolicy(_view(), 7)
    remote = resolve_destination(policy, "node-1", ipaddress.ip_address("10.0.2.2"), 80)
    assert isinstance(remote, RemoteDestination)
    assert remote.entry.pu_id == "node-2.db"
    # A peer whose enforcer has no known address has nobody to ask: decided as an address.
    unreachable = resolve_destination(policy, "node-1", ipaddress.ip_address("10.0.9.2"), 80)
    assert isinstance(unreachable, ExternalDestination)
    assert unreachable.network == ""
    partner = resolve_destination(policy, "node-1", ipaddress.ip_address("203.0.113.9"), 80)
    assert isinstance(partner, ExternalDestination)
    assert partner.network == "partner"
    assert partner.labels == Labels({"role": "partner"})


def test_view_and_pu_files_round_trip_privately_and_ignore_damage(tmp_path: Path) -> None:
    views = ViewFile(tmp_path, "node-1")
    assert views.load() is None
    views.save(AppliedPolicy(_view(), 7))
    assert stat.S_IMODE(views.path.stat().st_mode) == 0o600
    loaded = views.load()
    assert loaded is not None
    assert loaded.revision == 7
    assert loaded.view == _view()
    views.path.write_bytes(b"\xff\xff not a message")
    assert views.load() is None

    pus = PuFile(tmp_path)
    record = StoredPu(
        "node-1.web", "web", "shop", "web-ns", {"app": "web"}, ("10.0.1.2",),
        (("http", "TCP", 8080),), "closed", 12345, b"\x01\x02", 1.5e9,
    )  # fmt: skip
    pus.save({record.pu_id: record})
    assert pus.load() == {record.pu_id: record}
    pus.path.write_text("{")
    assert pus.load() == {}


async def test_local_api_identifies_the_caller_by_the_kernel_and_carries_errors(
    tmp_path: Path,
) -> None:
    seen: list[Caller] = []

    async def echo(caller: Caller, body: bytes) -> bytes:
        seen.append(caller)
        return body[::-1]

    async def refuse(caller: Caller, body: bytes) -> bytes:
        raise PermissionDenied("no", reason="LOCAL_CALLER_NOT_ROOT")

    path = tmp_path / "run" / "enforcer.sock"
    server = LocalApiServer(path, {"Echo": echo, "Refuse": refuse})
    await server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        client = LocalApiClient(path)
        assert await client.call("Echo", b"abc") == b"cba"
        assert seen == [Caller(os.getpid(), os.getuid(), os.getgid())]
        with pytest.raises(PermissionDenied) as refused:
            await client.call("Refuse", b"")
        assert refused.value.reason == "LOCAL_CALLER_NOT_ROOT"
        with pytest.raises(NotFound):
            await client.call("Nope", b"")
    finally:
        await server.stop()
    assert not path.exists()
    with pytest.raises(Unavailable):
        await LocalApiClient(path).call("Echo", b"")


class FlakySink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_next = True

    async def report(self, batch_id: str, records: Sequence[FlowRecord]) -> None:
        self.calls.append((batch_id, len(records)))
        if self.fail_next:
            self.fail_next = False
            raise Unavailable("policy service down")


async def test_a_failed_flow_batch_is_resent_with_the_same_id() -> None:
    sink = FlakySink()
    reporter = FlowReporter("node-1", sink, window=timedelta(seconds=10), interval=3600)
    reporter.record(
        ConnectionFacts(
            FlowEndpoint(pu_id="node-1.web", ip="10.0.1.2"),
            FlowEndpoint(pu_id="node-2.db", ip="10.0.2.2", port=5432),
            Protocol.TCP,
            FlowDecision(Direction.EGRESS, FlowDecision.refused(Direction.EGRESS, "X").verdict,
                         "POLICY_REJECT"),
            revision=3,
        )
    )  # fmt: skip
    with pytest.raises(Unavailable):
        await reporter.flush(final=True)
    assert await reporter.flush(final=True) == 1
    assert [c[0] for c in sink.calls] == [sink.calls[0][0]] * 2
    assert reporter.reported == 1


def test_the_sources_egress_decision_is_read_from_the_request() -> None:
    assert egress_of(_decision_pb2.ACTION_UNSPECIFIED) is _Action.ALLOW  # an older source
    assert egress_of(_decision_pb2.ACTION_ENCRYPT) is _Action.ENCRYPT
    assert egress_of(_decision_pb2.ACTION_REJECT) is _Action.REJECT
    # observe never decides, and an unknown value is not guessed at: both refused upstream
    assert egress_of(_decision_pb2.ACTION_OBSERVE) is _Action.OBSERVE
    assert egress_of(99) is _Action.OBSERVE
