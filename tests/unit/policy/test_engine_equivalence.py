"""The compiled engine agrees with the reference evaluator on every decision, explanation
included, for random clusters, random probes (workloads and external addresses) and scores."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustwire.policy import Cluster, PolicyEngine, Protocol
from trustwire.policy.reference import ReferenceEvaluator

from .strategies import PORTS, PROTOCOLS, address, clusters, scores


def endpoints(cluster: Cluster) -> list[str]:
    specs = [w.key for w in cluster.workloads]
    # Addresses: some are workload addresses (resolve to the workload), most are external.
    specs += [str(address(i)) for i in (0, 5, 9, 17, 30)] + ["192.0.2.1"]
    return specs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_compiled_engine_agrees_with_reference(cluster: Cluster, data: st.DataObject) -> None:
    engine = PolicyEngine(cluster, cache_size=64)
    reference = ReferenceEvaluator(cluster)
    specs = endpoints(cluster)
    for _ in range(12):
        src = cluster.endpoint(data.draw(st.sampled_from(specs)))
        dst = cluster.endpoint(data.draw(st.sampled_from(specs)))
        protocol = data.draw(st.sampled_from(PROTOCOLS))
        port = data.draw(st.sampled_from((*PORTS, 442)))
        src_scores = data.draw(scores)
        dst_scores = data.draw(scores)
        expected = reference.decide(
            src, dst, protocol, port, source_scores=src_scores, destination_scores=dst_scores
        )
        # Twice: the second answer comes from the decision cache and must not differ.
        for _attempt in range(2):
            got = engine.decide(
                src, dst, protocol, port, source_scores=src_scores, destination_scores=dst_scores
            )
            assert got == expected, (src, dst, protocol, port, src_scores, dst_scores)


def test_cache_serves_identical_identities() -> None:
    from trustwire.policy import load_cluster

    cluster = load_cluster(
        [
            (
                "pods.yaml",
                "\n---\n".join(
                    f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: x, "
                    f"labels: {{app: web}}}}\nstatus: {{podIP: 10.1.0.{i + 1}}}"
                    for i in range(4)
                ),
            )
        ]
    )
    engine = PolicyEngine(cluster)
    first = engine.decide(cluster.endpoint("x/p0"), cluster.endpoint("x/p1"), Protocol.TCP, 80)
    second = engine.decide(cluster.endpoint("x/p2"), cluster.endpoint("x/p3"), Protocol.TCP, 80)
    assert first == second
    assert (engine.cache_misses, engine.cache_hits) == (1, 1)
    assert engine.identity_count == 1
