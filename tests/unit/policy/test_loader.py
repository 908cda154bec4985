"""Loading: every bad document is refused with file, document index and field path; nothing is
half-loaded; Trustwire kinds are strict."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustwire.errors import DocumentError
from trustwire.policy import Action, Protocol, PuType, load_cluster, read_sources


def load(text: str):  # type: ignore[no-untyped-def]
    return load_cluster([("in.yaml", text)])


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n"


def tw_policy(spec: str, meta: str = "{name: p, namespace: shop}") -> str:
    return (
        f"apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\nmetadata: {meta}\nspec: {spec}\n"
    )


def error_of(text: str) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        load(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (tw_policy("{subject: {}, object: {}}"), "spec.action", "required"),
        (tw_policy("{subject: {}, object: {}, action: permit}"), "spec.action", "unknown action"),
        (tw_policy("{subject: {}, action: allow}"), "spec.object", "required"),
        (
            tw_policy("{subject: {}, object: {}, action: allow, tier: kubernetes}"),
            "spec.tier",
            "cannot be written",
        ),
        (
            tw_policy("{subject: {}, object: {}, action: allow, tier: nope}"),
            "spec.tier",
            "unknown tier 'nope'",
        ),
        (
            tw_policy("{subject: {}, object: {}, action: allow, observeAction: reject}"),
            "spec.observeAction",
            "only valid with action: observe",
        ),
        (
            tw_policy("{subject: {matchLabel: {a: b}}, object: {}, action: allow}"),
            "spec.subject.matchLabel",
            "unknown field",
        ),
        (
            tw_policy("{subject: {}, object: {}, action: allow, conditions: {minReputation: 2}}"),
            "spec.conditions.minReputation",
            "between 0.0 and 1.0",
        ),
        (
            tw_policy("{subject: {}, object: {}, action: allow, ports: [{port: 70000}]}"),
            "spec.ports[0].port",
            "between 1 and 65535",
        ),
        (
            tw_policy("{subject: {matchLabels: {app: true}}, object: {}, action: allow}"),
            "spec.subject.matchLabels.app",
            "label values must be strings",
        ),
        (
            "apiVersion: trustwire.io/v1\nkind: ProcessingUnit\n"
            "metadata: {name: job, labels: {namespace: prod}}\nspec: {}\n",
            "metadata.labels.namespace",
            "reserved label",
        ),
        (
            "apiVersion: trustwire.io/v1\nkind: ExternalNetwork\nmetadata: {name: n}\n"
            "spec: {cidrs: []}\n",
            "spec.cidrs",
            "at least one CIDR",
        ),
        (
            "apiVersion: trustwire.io/v1\nkind: ExternalNetwork\n"
            "metadata: {name: n, namespace: x}\nspec: {cidrs: [10.0.0.0/8]}\n",
            "metadata.namespace",
            "cluster-scoped",
        ),
        (
            "apiVersion: trustwire.io/v1\nkind: ExternalNetwork\nmetadata: {name: n}\n"
            "spec: {cidrs: [10.0.0.0]}\n",
            "spec.cidrs[0]",
            "missing prefix length",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
            "kind",
            "unsupported kind v1 Secret",
        ),
        ("kind: Pod\nmetadata: {name: s}\n", "apiVersion", "required"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\n", "metadata.name", "invalid name"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nstatus: {podIP: 10.0.0.300}\n",
            "status.podIP",
            "invalid IP address",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  annotations:\n"
            "    trustwire.io/default-action: deny\n",
            "metadata.annotations.trustwire.io/default-action",
            "must be allow or reject",
        ),
    ],
)
def test_bad_documents_name_the_field(text: str, field: str, problem: str) -> None:
    err = error_of(POD + "---\n" + text)
    assert err.source == "in.yaml"
    assert err.index == 2
    assert err.field == field
    assert problem in str(err)
    assert str(err).startswith("in.yaml: document 2")


def test_duplicates_are_refused_with_both_places() -> None:
    err = error_of(POD + "---\n" + POD)
    assert "duplicate Pod shop/web: Pod shop/web is already defined in in.yaml document 1" in str(
        err
    )
    assert err.index == 2


def test_v1_list_items_and_empty_documents() -> None:
    cluster = load(
        "---\n---\napiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, namespace: x}\n"
        "- apiVersion: v1\n  kind: Pod\n  metadata: {name: b, namespace: x}\n"
    )
    assert [w.key for w in cluster.workloads] == ["x/a", "x/b"]
    err = error_of(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {}}\n"
    )
    assert err.field == "items[0].metadata.name"


def test_trustwire_kinds_load_with_defaults() -> None:
    cluster = load(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n"
        "    trustwire.io/default-action: reject\n---\n"
        "apiVersion: trustwire.io/v1\nkind: Tier\nmetadata: {name: emergency}\n"
        "spec: {order: 1}\n---\n"
        + tw_policy("{subject: {}, object: {}, action: observe, tier: emergency}")
        + "---\napiVersion: trustwire.io/v1\nkind: ProcessingUnit\n"
        "metadata: {name: job, labels: {app: b}}\n"
        "spec: {ips: [10.9.0.1], ports: [{name: http, port: 80}]}\n"
    )
    assert cluster.namespace("shop").default_action is Action.REJECT
    assert cluster.namespace("shop").labels["kubernetes.io/metadata.name"] == "shop"
    (policy,) = cluster.access_policies
    assert (policy.tier, policy.priority, policy.observe_action) == (
        "emergency",
        1000,
        Action.REJECT,
    )
    assert [t.name for t in cluster.tiers][:2] == ["emergency", "security"]
    job = cluster.workload("default/job")
    assert job is not None
    assert job.pu_type is PuType.PROCESS
    assert job.resolve_port("http", Protocol.TCP) == 80
    assert job.identity_labels()["namespace"] == "default"


def test_reserved_labels_on_pods_are_overwritten_by_attestation() -> None:
    cluster = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: w, namespace: shop, "
        "labels: {namespace: kube-system, pu-type: external}}\n"
    )
    w = cluster.workload("shop/w")
    assert w is not None
    assert w.identity_labels()["namespace"] == "shop"
    assert w.identity_labels()["pu-type"] == "pod"
    assert w.labels["namespace"] == "kube-system"  # Kubernetes selectors still see its own labels


def test_read_sources_directories_are_recursive_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.yml").write_text(POD.replace("web", "two"))
    (tmp_path / "1.yaml").write_text(POD)
    (tmp_path / "notes.txt").write_text("not yaml")
    sources = read_sources([str(tmp_path)])
    assert [Path(name).name for name, _ in sources] == ["1.yaml", "2.yml"]
    with pytest.raises(DocumentError, match=r"contains no \.yaml"):
        read_sources([str(_empty(tmp_path))])


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_yaml_syntax_error_has_line_and_document() -> None:
    err = error_of(POD + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: [x\n")
    assert err.index == 2
    assert "line 8" in str(err)  # the line in the file, not in the document


def test_pod_and_processing_unit_of_one_name_collide() -> None:
    err = error_of(
        POD + "---\napiVersion: trustwire.io/v1\nkind: ProcessingUnit\n"
        "metadata: {name: web, namespace: shop}\nspec: {}\n"
    )
    assert "duplicate ProcessingUnit shop/web: Pod shop/web is already defined" in str(err)
