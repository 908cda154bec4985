"""Policy distribution: per-enforcer views streamed over ``WatchPolicy`` (Envoy ADS style).

- ``stream.PolicyDistribution``: the server side, one per replica (``watch`` per stream);
- ``hub.ViewHub``: the per-revision view cache every stream of a replica shares;
- ``client.PolicyClient``: the enforcer side (failover, resume, acks);
- ``codec``: views <-> protobuf; ``adapters``: wiring to the state mirror and repository.

Decisions and reasons: ``docs/decisions/`` ("Policy distribution").
"""

from .adapters import distribution_factory
from .client import Backoff, PolicyClient
from .hub import ViewHub
from .seam import AckError, AckRecorder, DistributionState, StateSource
from .stream import PolicyDistribution

__all__ = [
    "AckError",
    "AckRecorder",
    "Backoff",
    "DistributionState",
    "PolicyClient",
    "PolicyDistribution",
    "StateSource",
    "ViewHub",
    "distribution_factory",
]
