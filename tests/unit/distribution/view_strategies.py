"""Random placements of a random cluster's workloads on a few enforcers."""

from __future__ import annotations

from hypothesis import strategies as st

from trustwire.policy import Cluster
from trustwire.policy.views import PuPlacement, Topology

ENFORCERS = ("node-a", "node-b", "node-c")


def pu_id(key: str) -> str:
    return "pu-" + key.replace("/", "-")


@st.composite
def topologies(draw: st.DrawFn, cluster: Cluster) -> Topology:
    placement = {
        w.key: PuPlacement(
            pu_id=pu_id(w.key),
            enforcer_id=draw(st.sampled_from(ENFORCERS)),
            fail_open=draw(st.booleans()),
        )
        for w in cluster.workloads
    }
    return Topology(
        placement=placement,
        enforcer_addresses={e: (f"{e}.local:8443",) for e in ENFORCERS},
    )
