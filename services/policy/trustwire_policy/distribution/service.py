"""A ``PolicyService`` servicer that serves ``WatchPolicy`` only.

The policy service's own servicer delegates ``WatchPolicy`` to ``PolicyDistribution.watch``;
this one exists for processes that host distribution alone (tests, the fan-out benchmark).
Every other method answers UNIMPLEMENTED (the generated base class).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from trustwire.api.policy.v1 import policy_service_pb2, policy_service_pb2_grpc
from trustwire.runtime import current_caller

from .stream import PolicyDistribution

__all__ = ["DistributionServicer"]


class DistributionServicer(policy_service_pb2_grpc.PolicyServiceServicer):  # type: ignore[misc]
    def __init__(self, distribution: PolicyDistribution) -> None:
        self.distribution = distribution

    def WatchPolicy(
        self,
        request_iterator: AsyncIterator[policy_service_pb2.WatchPolicyRequest],
        context: Any,
    ) -> AsyncIterator[policy_service_pb2.WatchPolicyResponse]:
        return self.distribution.watch(request_iterator, current_caller())
