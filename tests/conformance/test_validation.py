"""Documents the API server would reject must be rejected, naming source, document and field.

Authority: ``ValidateNetworkPolicySpec``, ``ValidateNetworkPolicyPort``,
``ValidateNetworkPolicyPeer`` and ``ValidateIPBlock`` in
``pkg/apis/networking/validation/validation.go`` and ``ValidateLabelSelector`` in
``k8s.io/apimachinery/pkg/apis/meta/v1/validation``. The field paths below are the paths those
functions report (``field.Path`` rendering, e.g. ``spec.ingress[0].from[0]``).

Document numbers in messages are 1-based ("document 2" is the second document of a file), as
``DocumentError`` renders them.
"""

from __future__ import annotations

import textwrap

import pytest

from trustwire.errors import DocumentError
from trustwire.policy import load_cluster

from .model import model_yaml

VALID_FIRST = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: fine, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""


def _policy(spec: str, name: str = "bad") -> str:
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: x}}\n"
        "spec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    )


def _load(*sources: tuple[str, str]) -> None:
    load_cluster([("model.yaml", model_yaml()), *sources])


INVALID: list[tuple[str, str, str]] = [
    # (id, spec, field path the API server reports)
    (
        "ipblock-with-podselector",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.0/8}
            podSelector: {matchLabels: {pod: a}}
        """,
        "spec.ingress[0].from[0]",
    ),
    (
        "ipblock-with-namespaceselector-egress",
        """
        podSelector: {}
        policyTypes: [Egress]
        egress:
        - to:
          - podSelector: {}
          - ipBlock: {cidr: 10.0.0.0/8}
            namespaceSelector: {}
        """,
        "spec.egress[0].to[1]",
    ),
    (
        "empty-peer",
        """
        podSelector: {}
        ingress:
        - from:
          - {}
        """,
        "spec.ingress[0].from[0]",
    ),
    (
        "endport-below-port",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: 81, endPort: 80}
        """,
        "spec.ingress[0].ports[0].endPort",
    ),
    (
        "endport-with-named-port",
        """
        podSelector: {}
        policyTypes: [Egress]
        egress:
        - ports:
          - {port: 80}
          - {port: serve-80-tcp, endPort: 90}
        """,
        "spec.egress[0].ports[1].endPort",
    ),
    (
        "endport-without-port",
        """
        podSelector: {}
        ingress:
        - ports:
          - {protocol: TCP, endPort: 90}
        """,
        "spec.ingress[0].ports[0].endPort",
    ),
    (
        "endport-out-of-range",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: 80, endPort: 65536}
        """,
        "spec.ingress[0].ports[0].endPort",
    ),
    (
        "port-zero",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: 0}
        """,
        "spec.ingress[0].ports[0].port",
    ),
    (
        "port-too-large",
        """
        podSelector: {}
        ingress:
        - {}
        - ports:
          - {port: 65536}
        """,
        "spec.ingress[1].ports[0].port",
    ),
    (
        "port-negative",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: -1}
        """,
        "spec.ingress[0].ports[0].port",
    ),
    (
        "quoted-number-is-an-invalid-port-name",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: "80"}
        """,
        "spec.ingress[0].ports[0].port",
    ),
    (
        "port-name-too-long",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: abcdefghijklmnop}
        """,
        "spec.ingress[0].ports[0].port",
    ),
    (
        "port-name-uppercase",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: Serve-80}
        """,
        "spec.ingress[0].ports[0].port",
    ),
    (
        "protocol-unsupported",
        """
        podSelector: {}
        ingress:
        - ports:
          - {protocol: ICMP, port: 80}
        """,
        "spec.ingress[0].ports[0].protocol",
    ),
    (
        "protocol-lowercase",
        """
        podSelector: {}
        ingress:
        - ports:
          - {protocol: tcp, port: 80}
        """,
        "spec.ingress[0].ports[0].protocol",
    ),
    (
        "except-outside-cidr",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock:
              cidr: 10.0.0.0/24
              except: [10.0.1.0/28]
        """,
        "spec.ingress[0].from[0].ipBlock.except[0]",
    ),
    (
        "except-equal-to-cidr",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock:
              cidr: 10.0.0.0/24
              except: [10.0.0.0/24]
        """,
        "spec.ingress[0].from[0].ipBlock.except[0]",
    ),
    (
        "except-wider-than-cidr",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock:
              cidr: 10.0.0.0/24
              except: [10.0.0.0/16]
        """,
        "spec.ingress[0].from[0].ipBlock.except[0]",
    ),
    (
        "second-except-outside-cidr",
        """
        podSelector: {}
        policyTypes: [Egress]
        egress:
        - to:
          - ipBlock:
              cidr: 10.0.0.0/16
              except: [10.0.1.0/24, 192.168.0.0/24]
        """,
        "spec.egress[0].to[0].ipBlock.except[1]",
    ),
    (
        "except-other-family",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock:
              cidr: 10.0.0.0/8
              except: ["fd00::/64"]
        """,
        "spec.ingress[0].from[0].ipBlock.except[0]",
    ),
    (
        "cidr-prefix-too-long",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.0/33}
        """,
        "spec.ingress[0].from[0].ipBlock.cidr",
    ),
    (
        "cidr-garbage",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: not-a-cidr}
        """,
        "spec.ingress[0].from[0].ipBlock.cidr",
    ),
    (
        "cidr-without-prefix",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.1}
        """,
        "spec.ingress[0].from[0].ipBlock.cidr",
    ),
    (
        "cidr-missing",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {except: [10.0.0.0/24]}
        """,
        "spec.ingress[0].from[0].ipBlock.cidr",
    ),
    (
        "except-invalid",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/40]}
        """,
        "spec.ingress[0].from[0].ipBlock.except[0]",
    ),
    (
        "policy-type-unknown",
        """
        podSelector: {}
        policyTypes: [Both]
        """,
        "spec.policyTypes[0]",
    ),
    (
        "policy-type-wrong-case",
        """
        podSelector: {}
        policyTypes: [Ingress, egress]
        """,
        "spec.policyTypes[1]",
    ),
    (
        "policy-types-more-than-two",
        """
        podSelector: {}
        policyTypes: [Ingress, Egress, Ingress]
        """,
        "spec.policyTypes",
    ),
    (
        "operator-unknown",
        """
        podSelector:
          matchExpressions:
          - {key: pod, operator: Equals, values: [a]}
        """,
        "spec.podSelector.matchExpressions[0].operator",
    ),
    (
        "in-with-empty-values",
        """
        podSelector:
          matchExpressions:
          - {key: pod, operator: In, values: []}
        """,
        "spec.podSelector.matchExpressions[0].values",
    ),
    (
        "notin-without-values",
        """
        podSelector: {}
        ingress:
        - from:
          - namespaceSelector:
              matchExpressions:
              - {key: ns, operator: Exists}
              - {key: ns, operator: NotIn}
        """,
        "spec.ingress[0].from[0].namespaceSelector.matchExpressions[1].values",
    ),
    (
        "exists-with-values",
        """
        podSelector: {}
        ingress:
        - from:
          - podSelector:
              matchExpressions:
              - {key: pod, operator: Exists, values: [a]}
        """,
        "spec.ingress[0].from[0].podSelector.matchExpressions[0].values",
    ),
    (
        "doesnotexist-with-values-deep",
        """
        podSelector: {}
        policyTypes: [Egress]
        egress:
        - {}
        - to:
          - podSelector: {}
          - namespaceSelector: {}
          - namespaceSelector:
              matchExpressions:
              - {key: ns, operator: Exists}
              - {key: env, operator: DoesNotExist, values: [prod]}
        """,
        "spec.egress[1].to[2].namespaceSelector.matchExpressions[1].values",
    ),
    (
        "selector-key-invalid",
        """
        podSelector:
          matchExpressions:
          - {key: "bad key!", operator: Exists}
        """,
        "spec.podSelector.matchExpressions[0].key",
    ),
    (
        "selector-value-invalid",
        """
        podSelector:
          matchExpressions:
          - {key: pod, operator: In, values: ["not valid!"]}
        """,
        "spec.podSelector.matchExpressions[0].values[0]",
    ),
    (
        "match-labels-value-invalid",
        """
        podSelector:
          matchLabels: {pod: "has spaces"}
        """,
        "spec.podSelector.matchLabels",
    ),
]


@pytest.mark.parametrize(("spec", "path"), [pytest.param(s, p, id=i) for i, s, p in INVALID])
def test_rejected_with_field_path(spec: str, path: str) -> None:
    text = VALID_FIRST + "---\n" + _policy(spec)
    with pytest.raises(DocumentError) as info:
        _load(("policy.yaml", text))
    err = info.value
    message = str(err)
    assert message.startswith("policy.yaml: document 2"), message
    assert err.source == "policy.yaml"
    assert err.index == 2
    # The Kubernetes path, or a more precise one below it (Kubernetes reports a bad matchLabels
    # entry at ``...matchLabels`` itself; naming the key as well is fine).
    assert _within(err.field, path), f"field {err.field!r} is not {path!r} or below it"
    assert f": {err.field}: " in message, message


def _within(field: str, path: str) -> bool:
    return field == path or field.startswith((path + ".", path + "["))


def test_error_names_the_right_file_and_document() -> None:
    bad = _policy(
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: 70000}
        """,
        name="third",
    )
    with pytest.raises(DocumentError) as info:
        _load(
            ("first.yaml", VALID_FIRST),
            (
                "second.yaml",
                VALID_FIRST.replace("name: fine", "name: other")
                + "---\n"
                + VALID_FIRST.replace("name: fine", "name: another")
                + "---\n"
                + bad,
            ),
        )
    message = str(info.value)
    assert message.startswith("second.yaml: document 3"), message
    assert ": spec.ingress[0].ports[0].port: " in message


def test_metadata_name_required() -> None:
    text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: x}\n"
    text += "spec: {podSelector: {}}\n"
    with pytest.raises(DocumentError) as info:
        _load(("policy.yaml", text))
    assert str(info.value).startswith("policy.yaml: document 1")
    assert "metadata.name" in str(info.value)


VALID: list[tuple[str, str]] = [
    (
        "host-bits-in-cidr",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.1.5/16}
        """,
    ),
    (
        "host-bits-in-except",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.5/24]}
        """,
    ),
    (
        "except-single-host",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.7/32]}
        """,
    ),
    (
        "ipv6-block",
        """
        podSelector: {}
        ingress:
        - from:
          - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8::/64"]}
        """,
    ),
    (
        "end-port-equals-port",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: 80, endPort: 80}
        """,
    ),
    (
        "full-port-range",
        """
        podSelector: {}
        ingress:
        - ports:
          - {protocol: SCTP, port: 1, endPort: 65535}
        """,
    ),
    (
        "named-port",
        """
        podSelector: {}
        ingress:
        - ports:
          - {protocol: UDP, port: dns-udp}
        """,
    ),
    (
        "named-port-unknown-to-every-pod",
        """
        podSelector: {}
        ingress:
        - ports:
          - port: no-such-port
        """,
    ),
    (
        "protocol-only",
        """
        podSelector: {}
        ingress:
        - ports:
          - protocol: SCTP
        """,
    ),
    (
        "policy-types-reversed",
        """
        podSelector: {}
        policyTypes: [Egress, Ingress]
        """,
    ),
    (
        # Kubernetes checks only the count (at most two) and each value; a repeat is accepted.
        "policy-types-repeated",
        """
        podSelector: {}
        policyTypes: [Ingress, Ingress]
        """,
    ),
    (
        "empty-lists",
        """
        podSelector: {}
        policyTypes: []
        ingress: []
        egress: []
        """,
    ),
    (
        "empty-from-and-ports",
        """
        podSelector: {}
        ingress:
        - from: []
          ports: []
        """,
    ),
    (
        "all-operators",
        """
        podSelector:
          matchExpressions:
          - {key: a, operator: In, values: [x]}
          - {key: b, operator: NotIn, values: [y, z]}
          - {key: c, operator: Exists}
          - {key: d, operator: DoesNotExist, values: []}
        """,
    ),
    (
        "both-selectors-one-peer",
        """
        podSelector: {}
        ingress:
        - from:
          - podSelector: {}
            namespaceSelector: {}
        """,
    ),
]


@pytest.mark.parametrize("spec", [pytest.param(s, id=i) for i, s in VALID])
def test_accepted_by_api_server_is_accepted(spec: str) -> None:
    # The converse guard: validation must not be stricter than Kubernetes.
    _load(("policy.yaml", _policy(spec)))
