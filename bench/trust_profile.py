"""Trust Profile benchmark: sign, verify (cold and cached), document issuance, wire size, and
channel sessions (establishment, sealed sign, sealed verify cold and cached).

Run from the repository root::

    .venv/bin/python -m bench.trust_profile            # full (a few seconds per phase)
    .venv/bin/python -m bench.trust_profile --quick    # CI smoke, about a second
    .venv/bin/python -m bench.trust_profile --json

Goals (issue 3): verify <= 100 us cold, <= 10 us cached; issuance >= 2,000 documents/s; a
typical profile <= 1 KiB. Figures are printed next to the cost of one raw ECDSA P-256 verify
measured in the same run, because that is the floor of any per-profile signature check on
this machine: "cached" means no public-key work for the document or the chain, but the
profile's own signature is still verified per connection (docs/trust-profile.md, "Cost").

Sealed profiles (docs/trust-profile.md, "Channel sessions") replace the per-profile ECDSA with
an HMAC under a session established once per enforcer pair:
- "session establishment": the whole four-call handshake (initiate, respond, complete,
  confirm) between two enforcers whose chains are already cached (each side: one ECDSA sign,
  one ECDSA verify, one X25519 key generation and exchange, HKDF);
- "sealed verify cached": session established, document and channel chain cached: no
  public-key operation at all;
- "sealed verify cold": the first profile of a freshly established session, from a PU whose
  document this verifier has not seen: one public-key operation (the document's signature; the
  handshake already verified the peer's chain). Verifiers are prepared outside the timed loop.

Every loop is bounded both in iterations and in seconds, whichever comes first, and runs in
batches; a row is the lowest batch mean (as ``timeit`` reports its best repeat), so that time
stolen by other processes on a shared machine does not count. The run exits
2 when a phase did not measure what it claims (a cached phase doing more than one public-key
operation per profile, a cold phase hitting a cache), and 1 on missed goals only with
``--fail-on-goal``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustwire.identity import (
    Attestation,
    BundleSet,
    Credential,
    DocumentIssuer,
    FiveTuple,
    ProfileSigner,
    ProfileVerifier,
    PuType,
    Session,
    SessionManager,
    TraceContext,
    TrustBundle,
    TrustDomain,
)

__all__ = ["Report", "main", "run"]

GOAL_VERIFY_COLD_US = 100.0
GOAL_VERIFY_CACHED_US = 10.0
GOAL_ISSUANCE_PER_S = 2_000.0
GOAL_PROFILE_BYTES = 1024

_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_TD = TrustDomain("cluster-a.example")
_TUPLE = FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.9", 5432)
_LABELS = {"app": "web", "tier": "frontend", "version": "1.4.2", "team": "payments", "env": "prod"}
_ATTESTATION = Attestation(
    pu_type=PuType.POD,
    namespace="shop",
    exe_sha256="5f" * 32,
    uid=1000,
    image="registry.example/shop/web:1.4.2",
    image_digest="sha256:" + "c3" * 32,
    service_account="web",
    node="node-1",
)
_TRACE = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


@dataclass(frozen=True)
class Report:
    python: str
    machine: str
    document_bytes: int
    profile_bytes_reference: int
    profile_bytes_inline: int
    ecdsa_verify_us: float
    sign_us: float
    verify_cold_us: float
    verify_cached_us: float
    issuance_per_s: float
    cold_public_key_ops: float
    cached_public_key_ops: float
    profile_bytes_sealed: int
    session_establishment_us: float
    sealed_sign_us: float
    sealed_verify_cold_us: float
    sealed_verify_cached_us: float
    sealed_cold_public_key_ops: float
    sealed_cached_public_key_ops: float
    ok: bool

    @property
    def goals(self) -> dict[str, bool]:
        return {
            "profile <= 1 KiB": self.profile_bytes_reference <= GOAL_PROFILE_BYTES,
            "verify cold <= 100 us": self.verify_cold_us <= GOAL_VERIFY_COLD_US,
            "verify cached <= 10 us": self.verify_cached_us <= GOAL_VERIFY_CACHED_US,
            "sealed verify cold <= 100 us": self.sealed_verify_cold_us <= GOAL_VERIFY_COLD_US,
            "sealed verify cached <= 10 us": self.sealed_verify_cached_us <= GOAL_VERIFY_CACHED_US,
            "issuance >= 2,000/s": self.issuance_per_s >= GOAL_ISSUANCE_PER_S,
        }

    @property
    def goals_met(self) -> bool:
        return all(self.goals.values())


def _pki() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Credential]:
    ca_key, ca, leaf = _pki_with(None)
    return ca_key, ca, leaf


def _enforcer(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, node: str, serial: int
) -> Credential:
    """Another enforcer certificate under the same CA (the session peer)."""
    return _pki_with((ca_key, ca), node=node, serial=serial)[2]


def _pki_with(
    existing: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    *,
    node: str = "node-1",
    serial: int = 0x1001,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Credential]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Trustwire CA {_TD}")])
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if existing is not None:
        ca_key, ca = existing
    else:
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(1)
            .not_valid_before(_NOW - timedelta(days=1))
            .not_valid_after(_NOW + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, **usage), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_NOW - timedelta(minutes=10))
        .not_valid_after(_NOW + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, **usage), critical=True
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{_TD}/enforcer/{node}")]
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca, Credential(key, leaf)


def _measure(step: Callable[[], object], iterations: int, seconds: float) -> tuple[float, int]:
    """Seconds per call: the lowest mean over batches of consecutive calls (at most
    ``iterations`` calls or ``seconds`` in all, whichever first), and the number of calls.

    The lowest batch mean, as ``timeit`` reports its best repeat, filters out time stolen by
    other processes on a shared machine (the figures are for this code, not for the
    neighbours); every batch still runs the real per-call work, caches and GC included."""
    gc.collect()
    batch = max(16, iterations // _BATCHES)
    done = 0
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while done < iterations:
        size = min(batch, iterations - done)
        start = time.perf_counter()
        for _ in range(size):
            step()
        best = min(best, (time.perf_counter() - start) / size)
        done += size
        if time.perf_counter() > deadline:
            break
    return best, done


_BATCHES = 8


def run(iterations: int, seconds: float) -> Report:
    ca_key, ca_cert, enforcer = _pki()
    clock = lambda: _NOW  # noqa: E731 - a fixed clock: every profile is fresh
    bundles = BundleSet.of(TrustBundle(_TD, (ca_cert,)))
    issuer = DocumentIssuer(_TD, Credential(ca_key, ca_cert), clock=clock)
    signer = ProfileSigner(enforcer, clock=clock)
    peer_chain = enforcer.chain_der

    def issue() -> bytes:
        return issuer.issue(
            pu_id="shop/web-7d4b9c8f5-x2x9q",
            enforcer_id="node-1",
            labels=_LABELS,
            attestation=_ATTESTATION,
        ).envelope

    document = issue()

    def sign(inline: bool = False) -> bytes:
        return signer.sign(
            document,
            _TUPLE,
            destination_service="db.shop.svc:5432",
            behaviour_score=0.12,
            reputation_score=0.93,
            trace_context=_TRACE,
            inline_chain=inline,
        ).envelope

    # ECDSA floor: one raw P-256 verify of a profile-sized message.
    message = b"x" * 800
    raw_sig = enforcer.private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = enforcer.private_key.public_key()
    ecdsa_s, _ = _measure(
        lambda: public.verify(raw_sig, message, ec.ECDSA(hashes.SHA256())), iterations, seconds
    )
    issuance_s, _ = _measure(issue, iterations, seconds)
    sign_s, _ = _measure(sign, iterations, seconds)

    # Profiles are signed ahead of time (fresh nonce each) so verify loops measure verify only.
    envelopes = [sign() for _ in range(iterations)]
    cold_ops = 0
    cold_items = iter(envelopes)

    def verify_cold() -> None:
        nonlocal cold_ops
        verifier = ProfileVerifier(bundles, clock=clock)  # nothing cached
        verifier.verify(next(cold_items), _TUPLE, peer_chain=peer_chain)
        cold_ops += verifier.stats.public_key_ops

    cold_s, cold_done = _measure(verify_cold, iterations, seconds)

    cached = ProfileVerifier(bundles, clock=clock)
    cached.verify(sign(), _TUPLE, peer_chain=peer_chain)  # warm the chain and document caches
    ops_before = cached.stats.public_key_ops
    warm_items = iter(envelopes)
    cached_s, cached_done = _measure(
        lambda: cached.verify(next(warm_items), _TUPLE, peer_chain=peer_chain), iterations, seconds
    )
    cached_ops = (cached.stats.public_key_ops - ops_before) / cached_done

    # --- channel sessions ---------------------------------------------------------------------
    peer = _enforcer(ca_key, ca_cert, "node-2", 0x1002)
    verifier_1 = ProfileVerifier(bundles, clock=clock)  # node-1, the initiator
    verifier_2 = ProfileVerifier(bundles, clock=clock)  # node-2, the responder (verifies)
    manager_1 = SessionManager(enforcer, verifier_1)
    manager_2 = SessionManager(peer, verifier_2)

    def establish() -> tuple[Session, Session]:
        state, request = manager_1.initiate()
        response = manager_2.respond(request, peer_chain=peer_chain)
        session_1, confirm = manager_1.complete(state, response, peer_chain=peer.chain_der)
        return session_1, manager_2.confirm(confirm, peer_chain=peer_chain)

    establish()  # warm both chain caches
    establishment_s, _ = _measure(establish, min(iterations, 2_000), seconds)
    # The establishment loop installed many sessions; keep one fresh pair for the rows below.
    session_1, session_2 = establish()

    def seal() -> bytes:
        return signer.seal(
            document,
            _TUPLE,
            session_1,
            destination_service="db.shop.svc:5432",
            behaviour_score=0.12,
            reputation_score=0.93,
            trace_context=_TRACE,
        ).envelope

    sealed_sign_s, _ = _measure(seal, iterations, seconds)
    sealed = [seal() for _ in range(iterations)]

    # Cold: per profile, a verifier that holds the session (and, as after a handshake, the
    # peer's verified chain) but has never seen this document. Prepared outside the timing.
    cold_count = min(iterations, 1_000)
    cold_verifiers = []
    for _ in range(cold_count):
        fresh = ProfileVerifier(bundles, clock=clock)
        fresh.verify_enforcer_chain(peer_chain, _NOW)
        fresh.install_session(session_2)
        cold_verifiers.append(fresh)
    ops_before_cold = sum(v.stats.public_key_ops for v in cold_verifiers)
    cold_pairs = iter(zip(cold_verifiers, sealed, strict=False))

    def sealed_cold() -> None:
        fresh, envelope = next(cold_pairs)
        fresh.verify(envelope, _TUPLE, peer_chain=peer_chain)

    sealed_cold_s, sealed_cold_done = _measure(sealed_cold, cold_count, seconds)
    sealed_cold_ops = (
        sum(v.stats.public_key_ops for v in cold_verifiers) - ops_before_cold
    ) / sealed_cold_done

    verifier_2.verify(seal(), _TUPLE, peer_chain=peer_chain)  # warm document and channel
    sealed_ops_before = verifier_2.stats.public_key_ops
    sealed_items = iter([seal() for _ in range(iterations)])
    sealed_cached_s, sealed_cached_done = _measure(
        lambda: verifier_2.verify(next(sealed_items), _TUPLE, peer_chain=peer_chain),
        iterations,
        seconds,
    )
    sealed_cached_ops = (verifier_2.stats.public_key_ops - sealed_ops_before) / sealed_cached_done

    ok = (
        cached_ops == 1.0
        and cold_ops / cold_done == 3.0
        and sealed_cached_ops == 0.0
        and sealed_cold_ops == 1.0
    )

    return Report(
        python=platform.python_version(),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        document_bytes=len(document),
        profile_bytes_reference=len(sign()),
        profile_bytes_inline=len(sign(inline=True)),
        ecdsa_verify_us=ecdsa_s * 1e6,
        sign_us=sign_s * 1e6,
        verify_cold_us=cold_s * 1e6,
        verify_cached_us=cached_s * 1e6,
        issuance_per_s=1.0 / issuance_s,
        cold_public_key_ops=cold_ops / cold_done,
        cached_public_key_ops=cached_ops,
        profile_bytes_sealed=len(seal()),
        session_establishment_us=establishment_s * 1e6,
        sealed_sign_us=sealed_sign_s * 1e6,
        sealed_verify_cold_us=sealed_cold_s * 1e6,
        sealed_verify_cached_us=sealed_cached_s * 1e6,
        sealed_cold_public_key_ops=sealed_cold_ops,
        sealed_cached_public_key_ops=sealed_cached_ops,
        ok=ok,
    )


def render(report: Report) -> str:
    floor = report.ecdsa_verify_us
    lines = [
        f"Trust Profile benchmark (Python {report.python}, {report.machine})",
        f"  identity document envelope   {report.document_bytes:6d} B",
        f"  profile, channel reference   {report.profile_bytes_reference:6d} B   goal <= "
        f"{GOAL_PROFILE_BYTES} B",
        f"  profile, inline chain        {report.profile_bytes_inline:6d} B   (fallback)",
        f"  raw ECDSA P-256 verify       {floor:8.1f} us  (floor of any per-profile signature)",
        f"  profile sign                 {report.sign_us:8.1f} us  = "
        f"{1e6 / report.sign_us:8.0f} /s",
        f"  verify cold                  {report.verify_cold_us:8.1f} us  = "
        f"{1e6 / report.verify_cold_us:8.0f} /s   goal <= {GOAL_VERIFY_COLD_US:g} us   "
        f"({report.cold_public_key_ops:g} public-key ops = {report.cold_public_key_ops:g} x floor)",
        f"  verify cached                {report.verify_cached_us:8.1f} us  = "
        f"{1e6 / report.verify_cached_us:8.0f} /s   goal <= {GOAL_VERIFY_CACHED_US:g} us   "
        f"({report.cached_public_key_ops:g} public-key op; "
        f"{report.verify_cached_us - floor:.1f} us besides it)",
        f"  document issuance            {report.issuance_per_s:8.0f} /s          goal >= "
        f"{GOAL_ISSUANCE_PER_S:,.0f} /s",
        "  channel sessions:",
        f"  profile, sealed              {report.profile_bytes_sealed:6d} B",
        f"  session establishment        {report.session_establishment_us:8.1f} us  = "
        f"{report.session_establishment_us / floor:5.1f} x floor (both sides, whole handshake)",
        f"  sealed sign                  {report.sealed_sign_us:8.1f} us  = "
        f"{1e6 / report.sealed_sign_us:8.0f} /s",
        f"  sealed verify cold           {report.sealed_verify_cold_us:8.1f} us  = "
        f"{1e6 / report.sealed_verify_cold_us:8.0f} /s   goal <= {GOAL_VERIFY_COLD_US:g} us   "
        f"({report.sealed_cold_public_key_ops:g} public-key op; "
        f"{report.sealed_verify_cold_us / floor:.2f} x floor)",
        f"  sealed verify cached         {report.sealed_verify_cached_us:8.1f} us  = "
        f"{1e6 / report.sealed_verify_cached_us:8.0f} /s   goal <= {GOAL_VERIFY_CACHED_US:g} us   "
        f"({report.sealed_cached_public_key_ops:g} public-key ops; "
        f"{report.sealed_verify_cached_us / floor:.3f} x floor)",
        "  goals: "
        + ", ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in report.goals.items()),
    ]
    if not report.ok:
        lines.append(
            "  MEASUREMENT INVALID: public-key operation counts are not 3 cold / 1 cached "
            "(signed), 1 cold / 0 cached (sealed)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Trust Profile benchmark")
    parser.add_argument("--quick", action="store_true", help="small bounds (CI smoke)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--fail-on-goal", action="store_true", help="exit 1 on a missed goal")
    args = parser.parse_args(argv)
    iterations, seconds = (200, 0.2) if args.quick else (5_000, 3.0)
    report = run(iterations, seconds)
    if args.json:
        print(json.dumps({**asdict(report), "goals": report.goals}, indent=2))
    else:
        print(render(report))
    if not report.ok:
        return 2
    if args.fail_on_goal and not report.goals_met:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
