"""What this enforcer trusts and how it proves itself: verifier, signer and channel sessions.

One ``ProfileVerifier`` per enforcer (its caches, replay cache and sessions are the point), fed
with the trust bundle and revocation list from the identity service's watch. The bundle the
certificate was issued with is trusted from the start (it is persisted with the certificate),
so a restarted enforcer verifies profiles before the identity service answers.
"""

from __future__ import annotations

import asyncio
import logging

from trustwire.identity import (
    BundleSet,
    ProfileSigner,
    ProfileVerifier,
    RevocationList,
    Session,
    SessionManager,
    SessionRole,
    TrustBundle,
)
from trustwire_enforcer.credentials import EnforcerCredential

__all__ = ["TrustState"]

_log = logging.getLogger("trustwire.enforcer.trust")


class TrustState:
    def __init__(self, credential: EnforcerCredential) -> None:
        self.credential = credential
        bundle = TrustBundle(credential.trust_domain, tuple(credential.node.bundle))
        self.verifier = ProfileVerifier(BundleSet.of(bundle))
        self.signer = ProfileSigner(credential.signing())
        # The answer to an Authorize travels on a channel whose client cannot read the server's
        # certificate, so answers carry the chain inline unless they are sealed.
        self.answer_signer = ProfileSigner(credential.signing(), inline_chain=True)
        # Inline chains in the session handshake: the initiator (a gRPC client) cannot read the
        # responder's TLS certificate, so the responder must send its chain in the response.
        self.sessions = SessionManager(credential.signing(), self.verifier, inline_chain=True)
        self.revocation_sequence = 0
        self.bundle_sequence = 0
        # Ids of sessions this enforcer initiated that the responder has confirmed.
        self._confirmed: set[bytes] = set()
        self._changed = asyncio.Condition()

    @property
    def spiffe_id(self) -> str:
        return self.credential.spiffe_id

    def rotate(self, credential: EnforcerCredential) -> None:
        """A renewed certificate signs from now on; sessions made with the old one stay valid
        until their own expiry (never later than the old certificate's)."""
        self.credential = credential
        self.signer = ProfileSigner(credential.signing())
        self.answer_signer = ProfileSigner(credential.signing(), inline_chain=True)
        self.sessions.credential = credential.signing()

    def session_with(self, peer_spiffe_id: str) -> Session | None:
        """A usable session with ``peer_spiffe_id`` that both sides hold (either role: both
        directions' keys exist on both sides), the newest first; None while there is none.

        A session this enforcer initiated is installed here when ``complete`` verified the
        responder, before the responder has it: it is offered only once ``confirmed`` reports
        that the responder accepted ``ConfirmSession``. A session this enforcer responded to
        is installed only at ``confirm``, after the initiator installed it: usable at once."""
        now = self.verifier.clock()
        best: Session | None = None
        local = self.signer.credential.spiffe_id
        for session in self.verifier.sessions:
            if session.peer_text != peer_spiffe_id or session.local != local:
                continue
            if session.role is SessionRole.INITIATOR and session.session_id not in self._confirmed:
                continue
            if session.usable(now) and (best is None or session.not_after > best.not_after):
                best = session
        return best

    def confirmed(self, session: Session) -> None:
        """The responder accepted ``ConfirmSession`` for ``session`` (one this enforcer
        initiated): both sides hold it, ``session_with`` may offer it from now on."""
        installed = {s.session_id for s in self.verifier.sessions}
        self._confirmed &= installed  # forget dropped and evicted sessions
        if session.session_id in installed:
            self._confirmed.add(session.session_id)

    async def update(self, bundle: TrustBundle | None, revocations: RevocationList | None) -> None:
        """Apply a trust-state update (stale ones are ignored by the verifier); sessions that no
        longer verify are dropped by the verifier itself."""
        if bundle is not None:
            self.verifier.update_bundles(self.verifier.bundles.replace(bundle))
            self.bundle_sequence = max(self.bundle_sequence, bundle.sequence_number)
        if revocations is not None and self.verifier.update_revocations(revocations):
            self.revocation_sequence = revocations.sequence_number
            _log.info(
                "revocation list applied",
                extra={
                    "sequence": revocations.sequence_number,
                    "revoked_enforcers": sorted(revocations.enforcer_ids),
                },
            )
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_revocations(self, sequence: int, timeout: float) -> None:  # noqa: ASYNC109
        """Until a revocation list at least as new as ``sequence`` is applied (for tests and
        for `trustwire enforcer revoke` waiting on convergence)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.revocation_sequence >= sequence)
