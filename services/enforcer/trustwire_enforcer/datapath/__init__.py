"""Proxy-mode datapath for network-namespace PUs (see docs/datapath.md).

The daemon's entry points::

    datapath = ProxyDatapath(decide, tls=TlsConfig.from_pem(...), on_report=record_flow)
    await datapath.add_pu("pu-1", "/proc/1234/ns/net", fail_mode=FailMode.CLOSED)
    datapath.close_where(lambda relay: not still_allowed(relay.connection), "policy_revoked")
    await datapath.remove_pu("pu-1")
    await datapath.close()

``decide`` is the handshake seam; ``PreAuthorizations`` + ``inbound_decider`` connect the
destination side's ``Authorize`` handler to its inbound listener.
"""

from trustwire_enforcer.datapath.authorization import PreAuthorizations, inbound_decider
from trustwire_enforcer.datapath.connection import (
    Action,
    ConnectionReport,
    Decider,
    Direction,
    FiveTuple,
    InterceptedConnection,
    Outcome,
    Verdict,
)
from trustwire_enforcer.datapath.errors import (
    DatapathError,
    NetnsError,
    PeerIdentityError,
    RulesetError,
)
from trustwire_enforcer.datapath.interception import (
    FailMode,
    ProxyDatapath,
    PuStatus,
    original_destination,
)
from trustwire_enforcer.datapath.relay import Relay, RelayRegistry
from trustwire_enforcer.datapath.rules import PuRuleset, RulesetMode
from trustwire_enforcer.datapath.tls import TlsConfig

__all__ = [
    "Action",
    "ConnectionReport",
    "DatapathError",
    "Decider",
    "Direction",
    "FailMode",
    "FiveTuple",
    "InterceptedConnection",
    "NetnsError",
    "Outcome",
    "PeerIdentityError",
    "PreAuthorizations",
    "ProxyDatapath",
    "PuRuleset",
    "PuStatus",
    "Relay",
    "RelayRegistry",
    "RulesetError",
    "RulesetMode",
    "TlsConfig",
    "Verdict",
    "inbound_decider",
    "original_destination",
]
