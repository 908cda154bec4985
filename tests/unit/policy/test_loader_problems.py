"""Loading reports every problem at once: one per bad document, in document order, across
sources; YAML syntax errors end their document only; cross-document checks run where they are
meaningful; the report is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustwire.errors import DocumentError
from trustwire.policy import build_cluster, load_cluster, parse_documents, read_sources
from trustwire.policy.loader import MAX_PROBLEMS

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
BAD_NETWORK_POLICY = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    "metadata: {name: db-ingress, namespace: shop}\n"
    "spec: {podSelector: {}, ingress: [{ports: [{port: 70000}]}]}\n"
)
BAD_ACCESS_POLICY = (
    "apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
    "metadata: {name: web-to-db, namespace: shop}\n"
    "spec: {subject: {}, object: {}, action: allw}\n"
)
BAD_TIER = "apiVersion: trustwire.io/v1\nkind: Tier\nmetadata: {name: gold}\nspec: {order: -1}\n"


def nap(name: str, spec: str = "{subject: {}, object: {}, action: allow}") -> str:
    return (
        "apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
        f"metadata: {{name: {name}, namespace: shop}}\nspec: {spec}\n"
    )


def problems_of(*sources: tuple[str, str]) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        load_cluster(list(sources))
    return info.value


def test_three_bad_documents_of_different_kinds_are_all_reported_in_order() -> None:
    text = "---\n".join([NAMESPACE, BAD_NETWORK_POLICY, NAMESPACE.replace("shop", "ok"),
                         BAD_ACCESS_POLICY, BAD_TIER])  # fmt: skip
    err = problems_of(("in.yaml", text))
    assert [(p.index, p.kind, p.namespace, p.name, p.field) for p in err.errors] == [
        (2, "NetworkPolicy", "shop", "db-ingress", "spec.ingress[0].ports[0].port"),
        (4, "NetworkAccessPolicy", "shop", "web-to-db", "spec.action"),
        (5, "Tier", "", "gold", "spec.order"),
    ]
    assert [p.message for p in err.errors] == [
        "in.yaml: document 2 (NetworkPolicy shop/db-ingress): spec.ingress[0].ports[0].port: "
        "must be between 1 and 65535, got 70000",
        "in.yaml: document 4 (NetworkAccessPolicy shop/web-to-db): spec.action: "
        "unknown action 'allw' (allow, reject, encrypt, observe)",
        "in.yaml: document 5 (Tier gold): spec.order: must be between 0 and 1000000, got -1",
    ]
    assert all(p.source == "in.yaml" and p.errors == (p,) for p in err.errors)
    # The whole reads like its first problem, so `except DocumentError` callers keep working.
    assert (err.source, err.index, err.field) == ("in.yaml", 2, "spec.ingress[0].ports[0].port")
    assert (err.total, err.omitted, err.documents) == (3, 0, 3)
    assert err.summary == "3 problems in 3 documents"
    assert err.message == f"3 problems in 3 documents; the first: {err.errors[0].message}"
    assert (err.reason, err.metadata["problems"], err.metadata["documents"]) == (
        "INVALID_DOCUMENT",
        "3",
        "3",
    )


def test_problems_across_sources_keep_source_then_document_order() -> None:
    err = problems_of(
        ("a.yaml", nap("one") + "---\n" + BAD_ACCESS_POLICY),
        ("b.yaml", BAD_TIER),
        ("c.yaml", nap("two", "{subject: {}, object: {}, action: allow, priority: x}")),
    )
    assert [(p.source, p.index, p.field) for p in err.errors] == [
        ("a.yaml", 2, "spec.action"),
        ("b.yaml", 1, "spec.order"),
        ("c.yaml", 1, "spec.priority"),
    ]
    assert err.summary == "3 problems in 3 documents"


def test_one_problem_is_reported_exactly_as_before() -> None:
    err = problems_of(("in.yaml", NAMESPACE + "---\n" + BAD_ACCESS_POLICY))
    assert err.errors == (err,)
    assert err.message == (
        "in.yaml: document 2 (NetworkAccessPolicy shop/web-to-db): spec.action: "
        "unknown action 'allw' (allow, reject, encrypt, observe)"
    )
    assert (err.total, err.omitted) == (1, 0)
    assert "problems" not in err.metadata


def test_parsing_inside_one_document_stops_at_its_first_problem() -> None:
    # Two problems in one document: only the first read (priority comes before action); the
    # next document is still checked.
    both = nap("p", "{subject: {}, object: {}, action: allw, priority: -5}")
    err = problems_of(("in.yaml", both + "---\n" + BAD_TIER))
    assert [(p.index, p.field) for p in err.errors] == [(1, "spec.priority"), (2, "spec.order")]


def test_kind_is_named_before_the_name_is_known() -> None:
    err = problems_of(("in.yaml", "apiVersion: trustwire.io/v1\nkind: Tier\nspec: {order: 1}\n"))
    assert (err.kind, err.name, err.field) == ("Tier", "", "metadata.name")
    assert err.message == "in.yaml: document 1: metadata.name: required"


def test_yaml_syntax_error_ends_only_its_document() -> None:
    # Document 2 is broken (unclosed flow sequence); 3 and 5 are bad, 4 is fine. The stream
    # resumes at the next `---`, documents keep their numbers and lines are those of the file.
    text = "---\n".join([NAMESPACE, "apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n",
                         BAD_ACCESS_POLICY, nap("fine"), BAD_TIER])  # fmt: skip
    err = problems_of(("in.yaml", text))
    assert [(p.index, p.kind, p.field) for p in err.errors] == [
        (2, "", ""),
        (3, "NetworkAccessPolicy", "spec.action"),
        (5, "Tier", "spec.order"),
    ]
    assert err.errors[0].message.startswith("in.yaml: document 2: line 8 column 1: invalid YAML:")


def test_every_broken_yaml_document_is_reported_with_its_own_line() -> None:
    text = "a: [\n---\n[just, a, list]\n---\n\tb: 1\n---\n" + BAD_TIER
    with pytest.raises(DocumentError) as info:
        parse_documents([("in.yaml", text)])
    err = info.value
    assert [p.index for p in err.errors] == [1, 2, 3, 4]
    assert "line 2 " in err.errors[0].message  # found at the next `---`
    assert err.errors[1].field == "(document)"  # valid YAML, but not an object
    assert "line 5 column 1: invalid YAML" in err.errors[2].message  # the tab
    assert err.errors[3].field == "spec.order"


def test_yaml_error_in_the_last_document_is_the_last_problem() -> None:
    err = problems_of(("in.yaml", BAD_ACCESS_POLICY + "---\nkind: [\n"))
    assert [p.index for p in err.errors] == [1, 2]
    assert "invalid YAML" in err.errors[1].message


def test_duplicates_are_found_among_parsed_documents_next_to_parse_problems() -> None:
    err = problems_of(("in.yaml", "---\n".join([nap("a"), BAD_TIER, nap("a"), BAD_ACCESS_POLICY])))
    assert [(p.index, p.field) for p in err.errors] == [
        (2, "spec.order"),
        (3, "metadata.name"),
        (4, "spec.action"),
    ]
    duplicate = err.errors[1]
    assert (duplicate.kind, duplicate.namespace, duplicate.name) == (
        "NetworkAccessPolicy",
        "shop",
        "a",
    )
    assert "is already defined in in.yaml document 1" in duplicate.message


def test_every_unknown_tier_is_reported_once_all_documents_parsed() -> None:
    text = "---\n".join(
        [
            nap("a", "{subject: {}, object: {}, action: allow, tier: gold}"),
            nap("b"),
            nap("c", "{subject: {}, object: {}, action: allow, tier: silver}"),
        ]
    )
    err = problems_of(("in.yaml", text))
    assert [(p.index, p.name, p.field) for p in err.errors] == [
        (1, "a", "spec.tier"),
        (3, "c", "spec.tier"),
    ]
    assert "unknown tier 'silver'" in err.errors[1].message


def test_references_are_not_checked_while_a_document_is_broken() -> None:
    # The broken Tier may be the one defining `gold`: reporting the policy would be noise.
    text = BAD_TIER + "---\n" + nap("a", "{subject: {}, object: {}, action: allow, tier: gold}")
    err = problems_of(("in.yaml", text))
    assert [(p.index, p.kind) for p in err.errors] == [(1, "Tier")]


def test_build_cluster_reports_every_unknown_tier() -> None:
    documents = parse_documents(
        [("in.yaml", nap("a", "{subject: {}, object: {}, action: allow, tier: x}") + "---\n"
          + nap("b", "{subject: {}, object: {}, action: allow, tier: y}"))]
    )  # fmt: skip
    with pytest.raises(DocumentError) as info:
        build_cluster(documents)
    assert [p.index for p in info.value.errors] == [1, 2]


def test_the_report_is_bounded() -> None:
    count = MAX_PROBLEMS + 50
    text = "---\n".join(
        nap(f"p{i}", "{subject: {}, object: {}, action: allw}") for i in range(count)
    )
    err = problems_of(("in.yaml", text))
    assert len(err.errors) == MAX_PROBLEMS
    assert [p.index for p in err.errors] == list(range(1, MAX_PROBLEMS + 1))
    assert (err.omitted, err.total, err.documents) == (50, count, count)
    assert err.summary == f"{count} problems in {count} documents"
    assert len(err.message) < 300  # whatever the count


def test_every_unreadable_path_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(NAMESPACE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DocumentError) as info:
        read_sources([str(tmp_path / "absent.yaml"), str(good), str(empty)])
    assert [(p.source, p.problem) for p in info.value.errors] == [
        (str(tmp_path / "absent.yaml"), "no such file or directory"),
        (str(empty), "directory contains no .yaml, .yml or .json file"),
    ]


def test_combine_flattens_and_keeps_a_single_problem_as_is() -> None:
    one = DocumentError("bad", source="a.yaml", index=1, field="spec", kind="Tier", name="t")
    two = DocumentError("worse", source="a.yaml", index=2)
    assert DocumentError.combine([one]) is one
    both = DocumentError.combine([one, two])
    assert DocumentError.combine([both, one], omitted=2).errors == (one, two, one)
    assert DocumentError.combine([both], omitted=3).total == 5
    assert one.what == "Tier t"
    described = DocumentError("bad", source="a.yaml", index=1, what="Pod ns/web")
    assert (described.kind, described.namespace, described.name) == ("Pod", "ns", "web")
    with pytest.raises(ValueError, match="at least one problem"):
        DocumentError.combine([])


def test_an_attested_executable_digest_is_a_valid_selector_value() -> None:
    """64 hex digits: one more than a Kubernetes label value may hold, yet exactly what the
    enforcer attests as ``exe-sha256``; anything else under that key is refused."""
    digest = "ab" * 32
    cluster = load_cluster(
        [
            (
                "in.yaml",
                nap(
                    "by-binary",
                    f"{{subject: {{matchLabels: {{exe-sha256: '{digest}'}}}}, "
                    "object: {}, action: allow}",
                ),
            )
        ]
    )
    assert cluster is not None
    error = problems_of(
        (
            "in.yaml",
            nap("short", "{subject: {matchLabels: {exe-sha256: abc}}, object: {}, action: allow}"),
        )
    )
    assert "spec.subject.matchLabels.exe-sha256" in str(error)
    assert "64 lowercase hex digits" in str(error)
