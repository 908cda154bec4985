"""Datapath errors, inside the project's one exception tree (``trustwire.errors``)."""

from __future__ import annotations

from trustwire.errors import TrustwireError, Unauthenticated

__all__ = ["DatapathError", "NetnsError", "PeerIdentityError", "RulesetError"]


class DatapathError(TrustwireError):
    """The kernel or a socket refused what the datapath needed; the PU is not (fully) served."""

    default_reason = "DATAPATH_ERROR"


class NetnsError(DatapathError):
    """A network namespace could not be opened or entered (gone, or not root)."""

    default_reason = "NETNS_UNAVAILABLE"


class RulesetError(DatapathError):
    """``nft`` rejected a ruleset or could not remove it; the message carries nft's stderr."""

    default_reason = "NFT_RULESET_FAILED"


class PeerIdentityError(Unauthenticated):
    """The peer enforcer's TLS certificate does not name the identity the verdict expected."""

    default_reason = "PEER_ENFORCER_MISMATCH"
