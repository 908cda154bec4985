"""Calls ``trustwire up`` makes to the services it started: health, join tokens, enrolment of
the policy replicas, Apply, acks, PU registration, flow queries.

Everything goes through the same public APIs an operator's tools use, with the admin
credential the identity service wrote on first start (as kubeadm's ``admin.conf``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trustwire.api.common.v1 import network_pb2, pagination_pb2
from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.api.flow.v1 import flow_service_pb2, flow_service_pb2_grpc
from trustwire.api.identity.v1 import (
    enrollment_pb2,
    identity_service_pb2,
    identity_service_pb2_grpc,
)
from trustwire.api.policy.v1 import policy_service_pb2, policy_service_pb2_grpc
from trustwire.errors import Unavailable
from trustwire.flows import FlowRecord, record_from_proto
from trustwire.runtime import ClientTLS, create_channel
from trustwire_enforcer.local_api import LocalApiClient
from trustwire_identity.ca import certificates_to_pem, key_to_pem
from trustwire_identity.client import enroll

from .scenario import PuSpec

__all__ = [
    "SERVER_NAME",
    "Admin",
    "ServiceCredential",
    "enroll_service",
    "local_pus",
    "register_pu",
]

CALL_TIMEOUT_S = 10.0
# Every service certificate carries this DNS name; clients dial 127.0.0.1 and check it.
SERVER_NAME = "localhost"


class Admin:
    """The admin credential, and the calls made with it."""

    def __init__(self, ca_bundle: Path, certificate: Path, key: Path) -> None:
        self.ca_bundle, self.certificate, self.key = ca_bundle, certificate, key

    @property
    def tls(self) -> ClientTLS:
        return ClientTLS.from_files(self.ca_bundle, self.certificate, self.key, SERVER_NAME)

    async def serving(self, address: str) -> bool:
        """gRPC health of the whole server at ``address`` is SERVING."""
        async with create_channel(address, self.tls) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    async def join_token(self, identity_address: str, name: str, *, service: bool) -> Any:
        kind = (
            enrollment_pb2.ENROLLMENT_KIND_SERVICE
            if service
            else enrollment_pb2.ENROLLMENT_KIND_ENFORCER
        )
        async with create_channel(identity_address, self.tls) as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            return await stub.CreateJoinToken(
                identity_service_pb2.CreateJoinTokenRequest(
                    kind=kind, name=name, ttl=duration_pb2.Duration(seconds=900)
                ),
                timeout=CALL_TIMEOUT_S,
            )

    async def apply(self, policy_address: str, yaml_text: str, source: str) -> int:
        async with create_channel(policy_address, self.tls) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            response = await stub.Apply(
                policy_service_pb2.ApplyRequest(
                    yaml=policy_service_pb2.YamlDocuments(text=yaml_text, source_name=source)
                ),
                timeout=CALL_TIMEOUT_S,
            )
        return int(response.revision)

    async def acked(self, policy_address: str, enforcers: Iterable[str], revision: int) -> bool:
        """Every enforcer of ``enforcers`` acked ``revision`` or later (``apply --wait``)."""
        wanted = set(enforcers)
        acked: set[str] = set()
        async with create_channel(policy_address, self.tls) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            token = ""
            while True:
                page = await stub.ListEnforcers(
                    policy_service_pb2.ListEnforcersRequest(
                        page=pagination_pb2.PageRequest(page_token=token)
                    ),
                    timeout=CALL_TIMEOUT_S,
                )
                acked.update(e.id for e in page.enforcers if e.status.acked_revision >= revision)
                token = page.page.next_page_token
                if not token:
                    break
        return wanted <= acked

    async def flows(self, policy_addresses: Sequence[str]) -> list[FlowRecord]:
        """Every flow record of the last hour in the cluster. Any replica answers for all of
        them (docs/flows.md); another address is asked only when one cannot be reached or
        could not reach every peer (then the fullest answer wins: callers poll until the
        records they wait for are there)."""
        best: list[FlowRecord] | None = None
        last: Unavailable | None = None
        for address in policy_addresses:
            try:
                records, complete = await self._cluster_flows(address)
            except Unavailable as error:
                last = error
                continue
            if complete:
                return records
            if best is None or len(records) > len(best):
                best = records
        if best is not None:
            return best
        raise last or Unavailable("no policy replica address")

    async def _cluster_flows(self, address: str) -> tuple[list[FlowRecord], bool]:
        """The cluster-wide listing as ``address`` answers it, and whether it reached every
        replica."""
        records: list[FlowRecord] = []
        complete = True
        async with create_channel(address, self.tls) as channel:
            stub = flow_service_pb2_grpc.FlowServiceStub(channel)
            token = ""
            while True:
                response = await stub.QueryFlows(
                    flow_service_pb2.QueryFlowsRequest(
                        page=pagination_pb2.PageRequest(page_size=1000, page_token=token)
                    ),
                    timeout=CALL_TIMEOUT_S,
                )
                complete = complete and not response.unreachable_replicas
                records.extend(record_from_proto(r) for r in response.records)
                token = response.page.next_page_token
                if not token:
                    break
        return records, complete


class ServiceCredential:
    """Files of an enrolled service (a policy replica): chain, key (0600), trust bundle."""

    def __init__(self, directory: Path) -> None:
        self.certificate = directory / "cert.pem"
        self.key = directory / "key.pem"
        self.bundle = directory / "bundle.pem"


async def enroll_service(
    enroll_address: str, token: str, ca_sha256: str, directory: Path
) -> ServiceCredential:
    """Enrol like every Trustwire service (DESIGN.md: no hand-made certificates)."""
    node = await enroll(
        enroll_address,
        token,
        ca_sha256=ca_sha256,
        server_name=SERVER_NAME,
        dns_names=(SERVER_NAME,),
    )
    files = ServiceCredential(directory)

    def write() -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.certificate.write_bytes(certificates_to_pem(node.chain))
        files.key.touch(mode=0o600)  # 0600 before the key is in it
        files.key.write_bytes(key_to_pem(node.key))
        files.bundle.write_bytes(certificates_to_pem(node.bundle))

    await asyncio.to_thread(write)
    return files


async def register_pu(socket: Path, pu: PuSpec) -> str:
    """``trustwire pu add --netns``, through the enforcer's local API; returns the PU id."""
    request = local_pb.AddPuRequest(
        netns_path=f"/run/netns/{pu.netns}",
        name=pu.name,
        namespace=pu.namespace,
        labels=pu.labels,
    )
    for port in pu.ports:
        request.ports.add(name=port.name, protocol=network_pb2.PROTOCOL_TCP, number=port.number)
    body = await LocalApiClient(socket).call("AddPu", request.SerializeToString())
    return str(local_pb.AddPuResponse.FromString(body).pu.id)


async def local_pus(socket: Path) -> list[local_pb.LocalPu]:
    """``trustwire pu list``: the PUs an enforcer serves, with what it attested."""
    body = await asyncio.wait_for(LocalApiClient(socket).call("ListPus", b""), CALL_TIMEOUT_S)
    return list(local_pb.ListPusResponse.FromString(body).pus)
