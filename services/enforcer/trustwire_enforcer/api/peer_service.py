"""``AuthorizationService`` on the enforcer channel: protobuf in, domain call, protobuf out.

The channel is mutual TLS with enforcer certificates; the authorization table admits only
enforcers. The caller's certificate (from the TLS session) is handed to the verifier as the
channel peer chain: a profile signed without an inline chain is checked against exactly the
certificate that authenticated the channel, and a sealed one must come from its session's peer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trustwire.api.common.v1 import decision_pb2
from trustwire.api.enforcer.v1 import authorization_service_pb2 as authz_pb
from trustwire.policy.model import Action
from trustwire.wire_enums import ACTION_FROM_PB
from trustwire_enforcer.api.convert import answer_to_pb, claimed_five_tuple
from trustwire_enforcer.handshake import Handshake

__all__ = ["AuthorizationServicer", "egress_of", "peer_chain_of"]

_PEER_CERT = "x509_pem_cert"
_chains: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
_CHAIN_CACHE = 256


def peer_chain_of(auth_context: Mapping[str, Iterable[bytes]]) -> tuple[bytes, ...] | None:
    """The channel peer's certificate as a DER chain (leaf only: that is what TLS exposes;
    the verifier chains it to the bundle). Parsed once per distinct certificate."""
    pems = list(auth_context.get(_PEER_CERT, ()))
    if not pems:
        return None
    pem = pems[0]
    chain = _chains.get(pem)
    if chain is None:
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        chain = (der,)
        _chains[pem] = chain
        while len(_chains) > _CHAIN_CACHE:
            _chains.popitem(last=False)
    return chain


def egress_of(value: int) -> Action:
    """The source's egress decision from the request. Unset (a source predating the field)
    is a plain allow: exactly what such a source could ask for. A value this build does not
    know is read as ``observe``, which the handshake refuses as malformed."""
    if value == decision_pb2.ACTION_UNSPECIFIED:
        return Action.ALLOW
    return ACTION_FROM_PB.get(value, Action.OBSERVE)


class AuthorizationServicer:
    def __init__(self, handshake: Handshake) -> None:
        self._handshake = handshake

    async def Authorize(self, request: Any, context: Any) -> Any:
        envelope = request.profile.SerializeToString(deterministic=True)
        answer = self._handshake.authorize(
            envelope,
            claimed_five_tuple(envelope),
            peer_chain_of(context.auth_context()),
            egress_of(request.egress_action),
        )
        return answer_to_pb(answer)

    async def OpenSession(self, request: Any, context: Any) -> Any:
        response = self._handshake.open_session(
            request.SerializeToString(deterministic=True), peer_chain_of(context.auth_context())
        )
        return authz_pb.OpenSessionResponse.FromString(response)

    async def ConfirmSession(self, request: Any, context: Any) -> Any:
        self._handshake.confirm_session(
            request.SerializeToString(deterministic=True), peer_chain_of(context.auth_context())
        )
        return authz_pb.ConfirmSessionResponse()
