"""Generate the Trust Profile test vectors in this directory.

    .venv/bin/python tests/vectors/trust_profile/generate.py          # rewrite the files
    .venv/bin/python tests/vectors/trust_profile/generate.py --check  # exit 1 if they differ

Every input is fixed (keys derived from labels, serials, validity, clock, document ids,
nonces), and this generator signs with deterministic ECDSA (RFC 6979), so regenerating gives
byte-identical files. That is a property of the generator only: Trustwire signers use
randomized ECDSA, and a verifier must accept any valid signature, never compare signatures.

Files:
- ``vectors.json``: keys, certificates, bundles, the reference document and profile with their
  payload, PAE and signature, and the vectors: each a fresh verifier fed a sequence of steps,
  each step with its inputs and expected outcome (``OK`` or a reason code).
- ``*.hex``: the reference profile's and document's bytes, for eyeballing and diffing.
- ``session.*.hex``: the channel-session handshake messages (fixed X25519 keys and randoms)
  and the reference sealed profile; ``vectors.json`` ``session`` holds every intermediate
  value (transcript, shared secret, HKDF outputs, MAC input, tag) and ``session_vectors``
  the sealed-profile verification steps.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402

from tests.unit.identity.pki import (  # noqa: E402
    T0,
    TD_A,
    TD_B,
    TYPICAL_LABELS,
    Ca,
    fixed_key,
    key_scalar_hex,
    make_ca,
    make_leaf,
    typical_attestation,
)
from trustwire.api.enforcer.v1 import authorization_service_pb2 as session_pb  # noqa: E402
from trustwire.identity import (  # noqa: E402
    DOCUMENT_PAYLOAD_TYPE,
    PROFILE_PAYLOAD_TYPE,
    FiveTuple,
    IdentityDocument,
    SignatureAlgorithm,
    SignedEnvelope,
    TraceContext,
    TrustDomain,
    TrustProfile,
    _codec,
    _crypto,
    _session,
)

FORMAT = "trustwire-trust-profile-vectors/v1"
TD_C = TrustDomain("cluster-c.example")  # a domain no verifier here trusts
TUPLE = FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.9", 5432)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_DETERMINISTIC = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def nonce(n: int) -> bytes:
    return bytes((n * 16 + i) & 0xFF for i in range(16))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Builder:
    def __init__(self) -> None:
        self.ca = {"ca-a": make_ca(TD_A), "ca-b": make_ca(TD_B), "ca-c": make_ca(TD_C)}
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {
            name: ca.key for name, ca in self.ca.items()
        }
        self.certs: dict[str, x509.Certificate] = {name: ca.cert for name, ca in self.ca.items()}
        self.enforcer("node-1", self.ca["ca-a"], TD_A, serial=0x1001)
        self.enforcer("node-2", self.ca["ca-a"], TD_A, serial=0x1002)
        self.enforcer("node-9", self.ca["ca-b"], TD_B, serial=0x1009)
        self.enforcer("node-c", self.ca["ca-c"], TD_C, serial=0x100C)
        self.enforcer(
            "node-1-expired",
            self.ca["ca-a"],
            TD_A,
            serial=0x1010,
            node="node-1",
            key="node-1",
            not_before=T0 - timedelta(hours=2),
            not_after=T0 - timedelta(seconds=1),
        )
        # B's CA certifies a key as an enforcer of domain A: must never pass as A.
        self.enforcer("impostor-a-by-b", self.ca["ca-b"], TD_A, serial=0x1011, node="node-1")
        self.enforcer(
            "node-1-no-digital-signature",
            self.ca["ca-a"],
            TD_A,
            serial=0x1012,
            node="node-1",
            digital_signature=False,
        )

    def enforcer(
        self,
        name: str,
        ca: Ca,
        td: TrustDomain,
        *,
        serial: int,
        node: str | None = None,
        key: str | None = None,
        **options: Any,
    ) -> None:
        key_name = key or name
        if key_name not in self.keys:
            self.keys[key_name] = fixed_key(f"vector key {key_name}")
        self.certs[name] = make_leaf(
            ca,
            f"spiffe://{td}/enforcer/{node or name}",
            key=self.keys[key_name],
            serial=serial,
            **options,
        )

    # --- documents and profiles ---------------------------------------------------------------

    def document(
        self,
        *,
        enforcer: str = "node-1",
        td: TrustDomain = TD_A,
        issued: int = -60,
        ttl: int = 3600,
    ) -> IdentityDocument:
        return IdentityDocument(
            document_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            pu_id="shop/web-7d4b9c8f5-x2x9q",
            trust_domain=td,
            enforcer_id=enforcer,
            labels=TYPICAL_LABELS,
            attestation=typical_attestation(),
            issued_at=T0 + timedelta(seconds=issued),
            expires_at=T0 + timedelta(seconds=issued + ttl),
        )

    def sign_document(self, doc: IdentityDocument, ca: str = "ca-a") -> bytes:
        payload = _codec.encode_document(doc)
        return _codec.encode_envelope(
            SignedEnvelope(
                payload,
                DOCUMENT_PAYLOAD_TYPE,
                self.keys[ca].sign(_crypto.pae(DOCUMENT_PAYLOAD_TYPE, payload), _DETERMINISTIC),
                SignatureAlgorithm.ECDSA_P256_SHA256,
            )
        )

    def profile(
        self,
        document_envelope: bytes,
        *,
        n: int = 0,
        at: int = 0,
        five_tuple: FiveTuple = TUPLE,
        peer_nonce: bytes = b"",
    ) -> TrustProfile:
        return TrustProfile(
            identity_document=_codec.decode_envelope(document_envelope),
            five_tuple=five_tuple,
            nonce=nonce(n),
            timestamp=T0 + timedelta(seconds=at),
            destination_service="db.shop.svc:5432",
            behaviour_score=0.125,
            reputation_score=0.875,
            trace_context=TraceContext(TRACEPARENT),
            peer_nonce=peer_nonce,
        )

    def sign_profile(
        self, profile: TrustProfile, *, key: str = "node-1", inline: tuple[str, ...] = ()
    ) -> bytes:
        payload = _codec.encode_profile(profile)
        return _codec.encode_envelope(
            SignedEnvelope(
                payload,
                PROFILE_PAYLOAD_TYPE,
                self.keys[key].sign(_crypto.pae(PROFILE_PAYLOAD_TYPE, payload), _DETERMINISTIC),
                SignatureAlgorithm.ECDSA_P256_SHA256,
                tuple(der(self.certs[c]) for c in inline),
            )
        )


def x25519_key(label: str) -> X25519PrivateKey:
    # Any 32 bytes are an X25519 private key (clamped on use, RFC 7748).
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def raw(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def session_section(b: Builder, doc_env: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The channel-session vectors: node-1 initiates, node-2 responds, at T0. Computed here from
    the primitives (transcript, X25519, HKDF, HMAC), independently of ``SessionManager``; the
    unit tests then run ``SessionManager`` with the same ephemeral inputs and check it agrees."""
    initiator, responder = (
        "spiffe://cluster-a.example/enforcer/node-1",
        ("spiffe://cluster-a.example/enforcer/node-2"),
    )
    eph_i, eph_r = x25519_key("vector x25519 initiator"), x25519_key("vector x25519 responder")
    rand_i = bytes(range(0xA0, 0xB0))
    rand_r = bytes(range(0xB0, 0xC0))
    not_before = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    not_after = not_before + 3600  # the lifetime, and both certificates' expiry
    transcript = _session.encode_transcript(
        initiator=initiator,
        responder=responder,
        initiator_ephemeral=raw(eph_i),
        responder_ephemeral=raw(eph_r),
        initiator_random=rand_i,
        responder_random=rand_r,
        not_before=not_before,
        not_after=not_after,
    )
    shared = eph_i.exchange(eph_r.public_key())
    assert shared == eph_r.exchange(eph_i.public_key())
    keys = _session.derive_session_keys(shared, transcript)
    signed_r = _session.signed_transcript(_session.SessionRole.RESPONDER, transcript)
    signed_i = _session.signed_transcript(_session.SessionRole.INITIATOR, transcript)
    sig_r = b.keys["node-2"].sign(signed_r, _DETERMINISTIC)
    sig_i = b.keys["node-1"].sign(signed_i, _DETERMINISTIC)
    request = session_pb.OpenSessionRequest(
        protocol=_session.SESSION_PROTOCOL, ephemeral_public_key=raw(eph_i), random=rand_i
    ).SerializeToString(deterministic=True)
    response = session_pb.OpenSessionResponse(
        session_id=keys.session_id,
        ephemeral_public_key=raw(eph_r),
        random=rand_r,
        not_before=timestamp_pb2.Timestamp(seconds=not_before),
        not_after=timestamp_pb2.Timestamp(seconds=not_after),
        signature=sig_r,
    ).SerializeToString(deterministic=True)
    confirm = session_pb.ConfirmSessionRequest(
        session_id=keys.session_id, signature=sig_i
    ).SerializeToString(deterministic=True)

    def seal(profile: TrustProfile, key: bytes, session_id: bytes = keys.session_id) -> bytes:
        payload = _codec.encode_profile(profile)
        tag = hmac.new(key, _session.sealed_mac_input(session_id, payload), "sha256").digest()
        return _codec.encode_envelope(
            SignedEnvelope(
                payload,
                PROFILE_PAYLOAD_TYPE,
                tag,
                SignatureAlgorithm.HMAC_SHA256_SESSION,
                session_id=session_id,
            )
        )

    reference = b.profile(doc_env, n=20)
    sealed_env = seal(reference, keys.initiator_key)
    payload = _codec.encode_profile(reference)
    mac_input = _session.sealed_mac_input(keys.session_id, payload)
    tag = hmac.new(keys.initiator_key, mac_input, "sha256").digest()
    unknown = bytes([keys.session_id[0] ^ 1]) + keys.session_id[1:]
    tampered = bytearray(sealed_env)
    tampered[-1] ^= 0x01  # the last byte of the session id: another (unknown) session
    tag_at = sealed_env.index(tag)
    wrong_tag = bytearray(sealed_env)
    wrong_tag[tag_at] ^= 0x01
    session_vectors = [
        {
            "name": "sealed-valid",
            "description": "The reference sealed profile (node-1 -> node-2).",
            "steps": [step(sealed_env, "OK")],
        },
        {
            "name": "sealed-replayed",
            "description": "The same sealed profile twice: the second is a replay.",
            "steps": [step(sealed_env, "OK"), step(sealed_env, "REPLAYED", now=10)],
        },
        {
            "name": "sealed-answer",
            "description": "node-2 verifies a profile node-1 sealed as an answer to nonce 00..0f.",
            "steps": [
                step(
                    seal(b.profile(doc_env, n=21, peer_nonce=nonce(0)), keys.initiator_key),
                    "OK",
                    expected_peer_nonce=nonce(0),
                )
            ],
        },
        {
            "name": "sealed-reflected",
            "description": "A profile sealed with the responder->initiator key, presented to "
            "the responder: the wrong direction.",
            "steps": [step(seal(b.profile(doc_env, n=22), keys.responder_key), "BAD_SIGNATURE")],
        },
        {
            "name": "sealed-bad-tag",
            "description": "The reference sealed profile with one bit of the tag flipped.",
            "steps": [step(bytes(wrong_tag), "BAD_SIGNATURE")],
        },
        {
            "name": "sealed-unknown-session",
            "description": "The reference sealed profile naming another session id.",
            "steps": [step(bytes(tampered), "UNKNOWN_SESSION")],
        },
        {
            "name": "sealed-other-session-key",
            "description": "Sealed with the right key but naming another session id (the tag "
            "covers the session id).",
            "steps": [
                step(seal(b.profile(doc_env, n=23), keys.initiator_key, unknown), "UNKNOWN_SESSION")
            ],
        },
        {
            "name": "sealed-session-expired",
            "description": "At the session's not_after (a profile timestamped then).",
            "steps": [
                step(
                    seal(b.profile(doc_env, n=24, at=3600), keys.initiator_key), "EXPIRED", now=3600
                )
            ],
        },
        {
            "name": "sealed-wrong-channel",
            "description": "The reference sealed profile arriving on node-9's channel.",
            "steps": [step(sealed_env, "CERTIFICATE_INVALID", peer_chain=("node-9",))],
        },
        {
            "name": "sealed-clock-skew",
            "description": "A sealed profile timestamped 31 s ahead.",
            "steps": [
                step(seal(b.profile(doc_env, n=25, at=31), keys.initiator_key), "CLOCK_SKEW")
            ],
        },
    ]
    section = {
        "description": (
            "Channel session between node-1 (initiator) and node-2 (responder) at `clock`; see "
            "docs/trust-profile.md, 'Channel sessions'. Ephemeral keys are raw X25519 private "
            "keys (RFC 7748). Signatures are RFC 6979 ECDSA by the enforcers' keys (`keys`). "
            "`session_vectors` run on a fresh verifier of node-2 holding this session (as the "
            "responder), peer_chain node-1 unless stated."
        ),
        "protocol": _session.SESSION_PROTOCOL,
        "initiator": {
            "enforcer": "node-1",
            "spiffe_id": initiator,
            "ephemeral_private_hex": eph_i.private_bytes_raw().hex(),
            "ephemeral_public_hex": raw(eph_i).hex(),
            "random_hex": rand_i.hex(),
        },
        "responder": {
            "enforcer": "node-2",
            "spiffe_id": responder,
            "ephemeral_private_hex": eph_r.private_bytes_raw().hex(),
            "ephemeral_public_hex": raw(eph_r).hex(),
            "random_hex": rand_r.hex(),
        },
        "not_before": iso(T0),
        "not_after": iso(T0 + timedelta(seconds=3600)),
        "not_before_unix": not_before,
        "not_after_unix": not_after,
        "transcript_hex": transcript.hex(),
        "transcript_sha256_hex": hashlib.sha256(transcript).hexdigest(),
        "responder_signed_hex": signed_r.hex(),
        "responder_signature_hex": sig_r.hex(),
        "initiator_signed_hex": signed_i.hex(),
        "initiator_signature_hex": sig_i.hex(),
        "shared_secret_hex": shared.hex(),
        "kdf": {
            "hash": "SHA-256",
            "salt": "SHA-256(transcript)",
            "session_id": {"info": _session.KDF_LABEL_SESSION_ID.decode(), "length": 16},
            "initiator_key": {"info": _session.KDF_LABEL_INITIATOR_KEY.decode(), "length": 32},
            "responder_key": {"info": _session.KDF_LABEL_RESPONDER_KEY.decode(), "length": 32},
        },
        "session_id_hex": keys.session_id.hex(),
        "initiator_key_hex": keys.initiator_key.hex(),
        "responder_key_hex": keys.responder_key.hex(),
        "open_session_request_hex": request.hex(),
        "open_session_response_hex": response.hex(),
        "confirm_session_request_hex": confirm.hex(),
        "sealed_profile": {
            "sealed_by": "node-1 (initiator key)",
            "nonce_hex": reference.nonce.hex(),
            "payload_hex": payload.hex(),
            "mac_input_hex": mac_input.hex(),
            "tag_hex": tag.hex(),
            "envelope_hex": sealed_env.hex(),
            "envelope_bytes": len(sealed_env),
        },
    }
    files = {
        "session.open_request.hex": request.hex().encode() + b"\n",
        "session.open_response.hex": response.hex().encode() + b"\n",
        "session.confirm_request.hex": confirm.hex().encode() + b"\n",
        "session.sealed_profile.envelope.hex": sealed_env.hex().encode() + b"\n",
    }
    section["vectors"] = session_vectors
    return section, files


def step(
    envelope: bytes,
    expect: str,
    *,
    now: int = 0,
    peer_chain: tuple[str, ...] = ("node-1",),
    observed: FiveTuple = TUPLE,
    expected_peer_nonce: bytes | None = None,
) -> dict[str, Any]:
    return {
        "now": iso(T0 + timedelta(seconds=now)),
        "envelope_hex": envelope.hex(),
        "peer_chain": list(peer_chain),
        "observed": five_tuple_json(observed),
        "expected_peer_nonce_hex": None
        if expected_peer_nonce is None
        else expected_peer_nonce.hex(),
        "expect": expect,
    }


def five_tuple_json(ft: FiveTuple) -> dict[str, Any]:
    return {
        "protocol": ft.protocol.value,
        "source_ip": str(ft.source_ip),
        "source_port": ft.source_port,
        "destination_ip": str(ft.destination_ip),
        "destination_port": ft.destination_port,
    }


def build() -> dict[str, bytes]:
    b = Builder()
    doc = b.document()
    doc_env = b.sign_document(doc)
    reference = b.profile(doc_env)
    reference_env = b.sign_profile(reference)
    doc_parts = _codec.decode_envelope(doc_env)
    ref_parts = _codec.decode_envelope(reference_env)

    def vector(name: str, description: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"name": name, "description": description, **extra, "steps": list(steps)}

    signed: Callable[..., bytes] = b.sign_profile
    vectors = [
        vector(
            "valid-channel-reference",
            "The reference profile: no chain inline; the signer is the channel peer (node-1).",
            step(reference_env, "OK"),
        ),
        vector(
            "valid-inline-chain",
            "Same profile (another nonce) with the signer chain inline and no channel chain.",
            step(signed(b.profile(doc_env, n=1), inline=("node-1",)), "OK", peer_chain=()),
        ),
        vector(
            "valid-skew-edges",
            "Timestamps exactly 30 s behind and ahead of the verifier's clock are accepted.",
            step(signed(b.profile(doc_env, n=2, at=-30)), "OK"),
            step(signed(b.profile(doc_env, n=3, at=30)), "OK"),
        ),
        vector(
            "valid-answer",
            "An answer profile bound to the request nonce 00..0f.",
            step(
                signed(b.profile(doc_env, n=4, peer_nonce=nonce(0))),
                "OK",
                expected_peer_nonce=nonce(0),
            ),
        ),
        vector(
            "replayed",
            "The same profile twice on one verifier: the second is a replay, 29 s later too.",
            step(reference_env, "OK"),
            step(reference_env, "REPLAYED", now=29),
        ),
        vector(
            "bad-signature",
            "The reference payload signed by node-2's key but presented on node-1's channel.",
            step(signed(reference, key="node-2"), "BAD_SIGNATURE"),
        ),
        vector(
            "malformed",
            "Bytes that are not a SignedEnvelope.",
            step(b"\xff\xff\xff\xff", "MALFORMED_PROFILE"),
        ),
        vector(
            "wrong-payload-type",
            "The identity document envelope presented as a profile.",
            step(doc_env, "WRONG_PAYLOAD_TYPE"),
        ),
        vector(
            "clock-skew-future",
            "Timestamp 31 s ahead of the verifier's clock.",
            step(signed(b.profile(doc_env, n=5, at=31)), "CLOCK_SKEW"),
        ),
        vector(
            "clock-skew-past",
            "Timestamp 31 s behind the verifier's clock.",
            step(signed(b.profile(doc_env, n=6, at=-31)), "CLOCK_SKEW"),
        ),
        vector(
            "expired-document",
            "A document that expired 1 s before the profile's time.",
            step(
                signed(b.profile(b.sign_document(b.document(issued=-3601)), n=7)),
                "EXPIRED",
            ),
        ),
        vector(
            "not-yet-valid-document",
            "A document issued 60 s in the future (beyond the 30 s tolerance).",
            step(
                signed(b.profile(b.sign_document(b.document(issued=60)), n=8)),
                "NOT_YET_VALID",
            ),
        ),
        vector(
            "expired-certificate",
            "The signer's certificate expired 1 s ago (same key, inline chain).",
            step(
                signed(b.profile(doc_env, n=9), inline=("node-1-expired",)),
                "EXPIRED",
                peer_chain=(),
            ),
        ),
        vector(
            "revoked-enforcer",
            "node-1 is on domain A's revocation list.",
            step(reference_env, "REVOKED"),
            revocations={"cluster-a.example": {"serials": [], "enforcer_ids": ["node-1"]}},
        ),
        vector(
            "revoked-serial",
            "node-1's certificate serial (1001) is on domain A's revocation list.",
            step(reference_env, "REVOKED"),
            revocations={"cluster-a.example": {"serials": ["1001"], "enforcer_ids": []}},
        ),
        vector(
            "foreign-trust-domain",
            "An enforcer of cluster-c.example, a domain with no bundle here.",
            step(
                signed(
                    b.profile(
                        b.sign_document(b.document(enforcer="node-c", td=TD_C), "ca-c"), n=10
                    ),
                    key="node-c",
                ),
                "FOREIGN_TRUST_DOMAIN",
                peer_chain=("node-c",),
            ),
        ),
        vector(
            "unknown-ca",
            "A certificate claiming spiffe://cluster-a.example/enforcer/node-1, issued by B's CA.",
            step(
                signed(b.profile(doc_env, n=11), key="impostor-a-by-b"),
                "UNKNOWN_CA",
                peer_chain=("impostor-a-by-b",),
            ),
        ),
        vector(
            "document-enforcer-mismatch",
            "node-2 presents the document node-1 was issued for its PU.",
            step(
                signed(b.profile(doc_env, n=12), key="node-2"),
                "DOCUMENT_ENFORCER_MISMATCH",
                peer_chain=("node-2",),
            ),
        ),
        vector(
            "address-mismatch",
            "The verifier observes destination port 5433, the profile says 5432.",
            step(
                signed(b.profile(doc_env, n=13)),
                "ADDRESS_MISMATCH",
                observed=FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.9", 5433),
            ),
        ),
        vector(
            "answer-for-another-request",
            "An answer whose peer nonce is not the request's nonce.",
            step(
                signed(b.profile(doc_env, n=14, peer_nonce=nonce(1))),
                "REPLAYED",
                expected_peer_nonce=nonce(0),
            ),
        ),
        vector(
            "certificate-invalid",
            "The signer certificate lacks the digitalSignature key usage.",
            step(
                signed(b.profile(doc_env, n=15)),
                "CERTIFICATE_INVALID",
                peer_chain=("node-1-no-digital-signature",),
            ),
        ),
    ]

    out: dict[str, Any] = {
        "format": FORMAT,
        "description": (
            "Trust Profile test vectors; see docs/trust-profile.md. Each vector runs on a fresh "
            "verifier that trusts `bundles` and `revocations`, with max skew 30 s; each step "
            "sets the clock to `now`, verifies `envelope_hex` for the connection `observed` "
            "with `peer_chain` (certificate names, leaf first) as the channel peer's chain, and "
            "expects `OK` or a reason code. Signatures were made with RFC 6979 ECDSA; do not "
            "compare signatures, verify them."
        ),
        "clock": iso(T0),
        "max_skew_seconds": 30,
        "payload_types": {"document": DOCUMENT_PAYLOAD_TYPE, "profile": PROFILE_PAYLOAD_TYPE},
        "keys": {
            name: {
                "curve": "P-256",
                "private_scalar_hex": key_scalar_hex(key),
                "public_key_spki_b64": b64(
                    key.public_key().public_bytes(
                        serialization.Encoding.DER,
                        serialization.PublicFormat.SubjectPublicKeyInfo,
                    )
                ),
            }
            for name, key in sorted(b.keys.items())
        },
        "certificates": {name: b64(der(cert)) for name, cert in sorted(b.certs.items())},
        "bundles": {"cluster-a.example": ["ca-a"], "cluster-b.example": ["ca-b"]},
        "reference_document": {
            "fields": {
                "document_id": doc.document_id,
                "pu_id": doc.pu_id,
                "trust_domain": doc.trust_domain.name,
                "enforcer_id": doc.enforcer_id,
                "spiffe_id": str(doc.spiffe_id),
                "labels": dict(sorted(doc.labels.items())),
                "attestation": {
                    "pu_type": "PROCESSING_UNIT_TYPE_POD",
                    "namespace": doc.attestation.namespace,
                    "exe_sha256": doc.attestation.exe_sha256,
                    "uid": doc.attestation.uid,
                    "image": doc.attestation.image,
                    "image_digest": doc.attestation.image_digest,
                    "service_account": doc.attestation.service_account,
                    "node": doc.attestation.node,
                },
                "issued_at": iso(doc.issued_at),
                "expires_at": iso(doc.expires_at),
            },
            "policy_labels": dict(sorted(doc.policy_labels.items())),
            "signer": "ca-a (no chain in the envelope: a CA of the domain's bundle)",
            "payload_hex": doc_parts.payload.hex(),
            "pae_hex": _crypto.pae(DOCUMENT_PAYLOAD_TYPE, doc_parts.payload).hex(),
            "signature_hex": doc_parts.signature.hex(),
            "envelope_hex": doc_env.hex(),
        },
        "reference_profile": {
            "fields": {
                "five_tuple": five_tuple_json(reference.five_tuple),
                "destination_service": reference.destination_service,
                "nonce_hex": reference.nonce.hex(),
                "timestamp": iso(reference.timestamp),
                "behaviour_score": reference.behaviour_score,
                "reputation_score": reference.reputation_score,
                "trace_context": {"traceparent": TRACEPARENT, "tracestate": ""},
                "peer_nonce_hex": "",
            },
            "signer": "node-1 (no chain in the envelope: the channel peer's certificate)",
            "payload_hex": ref_parts.payload.hex(),
            "pae_hex": _crypto.pae(PROFILE_PAYLOAD_TYPE, ref_parts.payload).hex(),
            "signature_hex": ref_parts.signature.hex(),
            "envelope_hex": reference_env.hex(),
            "envelope_bytes": len(reference_env),
        },
        "vectors": vectors,
    }
    session, session_files = session_section(b, doc_env)
    out["session"] = {k: v for k, v in session.items() if k != "vectors"}
    out["session_vectors"] = session["vectors"]
    files = {
        **session_files,
        "vectors.json": (json.dumps(out, indent=1) + "\n").encode(),
        "document.payload.hex": doc_parts.payload.hex().encode() + b"\n",
        "document.envelope.hex": doc_env.hex().encode() + b"\n",
        "profile.payload.hex": ref_parts.payload.hex().encode() + b"\n",
        "profile.pae.hex": _crypto.pae(PROFILE_PAYLOAD_TYPE, ref_parts.payload).hex().encode()
        + b"\n",
        "profile.signature.hex": ref_parts.signature.hex().encode() + b"\n",
        "profile.envelope.hex": reference_env.hex().encode() + b"\n",
        "node-1.cert.b64": b64(der(b.certs["node-1"])).encode() + b"\n",
        "ca-a.cert.b64": b64(der(b.certs["ca-a"])).encode() + b"\n",
    }
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ")
    args = parser.parse_args(argv)
    stale = []
    for name, content in build().items():
        path = HERE / name
        if path.exists() and path.read_bytes() == content:
            continue
        stale.append(name)
        if not args.check:
            path.write_bytes(content)
    if args.check and stale:
        print("stale vectors:", ", ".join(stale), file=sys.stderr)
        return 1
    print(("stale: " if args.check else "written: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
