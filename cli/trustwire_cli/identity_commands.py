"""Identity commands: join tokens, enforcers and the trust bundle.

``trustwire token create``, ``trustwire enforcer list``, ``trustwire enforcer revoke NODE`` and
``trustwire bundle show`` call the identity service directly (later: through the gateway) as
the admin named by the connection file: ``--config``, else ``$TRUSTWIRE_CONFIG``, else
``~/.trustwire/config`` (the identity service writes one next to its admin credential; see
``docs/identity-service.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from google.protobuf import duration_pb2, timestamp_pb2

from trustwire.api.identity.v1 import (
    enrollment_pb2,
    identity_service_pb2,
    identity_service_pb2_grpc,
)
from trustwire.errors import InvalidArgument
from trustwire.runtime import ClientTLS, create_channel
from trustwire_identity.admin import ClientConfig, default_config_path

from .tables import table

__all__ = ["parse_duration", "register"]

CALL_TIMEOUT_S = 10.0
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_KINDS = {
    "enforcer": enrollment_pb2.ENROLLMENT_KIND_ENFORCER,
    "service": enrollment_pb2.ENROLLMENT_KIND_SERVICE,
}


def parse_duration(text: str) -> timedelta:
    """``15m``, ``1h``, ``90s``, ``1h30m``; ``InvalidArgument`` naming ``--ttl`` otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise InvalidArgument(
            f"--ttl: invalid duration {text!r} (examples: 15m, 1h, 1h30m, 90s)", field="--ttl"
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def register(sub: Any) -> None:
    def connection(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--config",
            type=Path,
            default=None,
            help="connection file (default: $TRUSTWIRE_CONFIG or ~/.trustwire/config)",
        )

    token = sub.add_parser("token", help="join tokens that let enforcers and services enrol")
    token_sub = token.add_subparsers(dest="token_command", metavar="COMMAND")
    token_sub.required = True
    create = token_sub.add_parser(
        "create",
        help="create a single-use join token",
        description="Create a single-use, expiring join token. The secret is shown only once.",
    )
    create.add_argument("--ttl", default="1h", help="how long it can be redeemed (max 24h)")
    create.add_argument("--node", default="", help="bind it to this node (or service) name")
    create.add_argument("--kind", choices=sorted(_KINDS), default="enforcer")
    create.add_argument("-o", "--output", choices=("text", "json"), default="text")
    connection(create)
    create.set_defaults(handler=_runner(_token_create))

    enforcer = sub.add_parser("enforcer", help="enrolled enforcers")
    enforcer_sub = enforcer.add_subparsers(dest="enforcer_command", metavar="COMMAND")
    enforcer_sub.required = True
    listing = enforcer_sub.add_parser("list", help="list enrolled enforcers")
    listing.add_argument("--all", action="store_true", help="include revoked enforcers")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    connection(listing)
    listing.set_defaults(handler=_runner(_enforcer_list))
    revoke = enforcer_sub.add_parser(
        "revoke",
        help="revoke an enforcer",
        description="Revoke NODE: its certificates are listed as revoked everywhere, and it "
        "can no longer renew or obtain identity documents.",
    )
    revoke.add_argument("node")
    revoke.add_argument("--reason", default="", help="recorded in the revocation")
    revoke.add_argument("-o", "--output", choices=("text", "json"), default="text")
    connection(revoke)
    revoke.set_defaults(handler=_runner(_enforcer_revoke))

    bundle = sub.add_parser("bundle", help="the trust bundle of this trust domain")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", metavar="COMMAND")
    bundle_sub.required = True
    show = bundle_sub.add_parser("show", help="CA certificates and revocations")
    show.add_argument("-o", "--output", choices=("text", "pem", "json"), default="text")
    connection(show)
    show.set_defaults(handler=_runner(_bundle_show))


Command = Callable[[argparse.Namespace, Any], Awaitable[int]]


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return asyncio.run(_with_stub(args, command))

    return run


async def _with_stub(args: argparse.Namespace, command: Command) -> int:
    config = ClientConfig.load(args.config or default_config_path())
    tls = ClientTLS.from_files(config.ca_bundle, config.certificate, config.key)
    async with create_channel(config.address, tls) as channel:
        return await command(args, identity_service_pb2_grpc.IdentityServiceStub(channel))


def _time(ts: timestamp_pb2.Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")


async def _token_create(args: argparse.Namespace, stub: Any) -> int:
    ttl = parse_duration(args.ttl)
    request = identity_service_pb2.CreateJoinTokenRequest(
        kind=_KINDS[args.kind],
        name=args.node,
        ttl=duration_pb2.Duration(seconds=int(ttl.total_seconds())),
    )
    response = await stub.CreateJoinToken(request, timeout=CALL_TIMEOUT_S)
    result = {
        "token": response.token,
        "token_id": response.token_id,
        "spiffe_id": response.spiffe_id,
        "ca_sha256": response.ca_sha256,
        "expires_at": _time(response.expires_at),
    }
    if args.output == "json":
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        table(
            ["FIELD", "VALUE"],
            [[key.replace("_", " "), value] for key, value in result.items()],
        ),
        end="",
    )
    print("The token is shown only once. Enrol with it before it expires.")
    return 0


def _enrollment_json(enrollment: Any) -> dict[str, Any]:
    return {
        "id": enrollment.id,
        "spiffe_id": enrollment.spiffe_id,
        "certificate_serial": enrollment.certificate_serial,
        "certificate_not_after": _time(enrollment.certificate_not_after),
        "enrolled_at": _time(enrollment.enrolled_at),
        "renewed_at": _time(enrollment.renewed_at),
        "revoked_at": _time(enrollment.revoked_at),
    }


async def _enforcer_list(args: argparse.Namespace, stub: Any) -> int:
    enforcers: list[Any] = []
    page_token = ""
    while True:
        request = identity_service_pb2.ListEnforcersRequest(include_revoked=args.all)
        request.page.page_token = page_token
        response = await stub.ListEnforcers(request, timeout=CALL_TIMEOUT_S)
        enforcers.extend(response.enforcers)
        page_token = response.page.next_page_token
        if not page_token:
            break
    rows = [_enrollment_json(e) for e in enforcers]
    if args.output == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(
        table(
            ["ID", "SERIAL", "EXPIRES", "RENEWED", "REVOKED"],
            [
                [
                    row["id"],
                    row["certificate_serial"],
                    row["certificate_not_after"],
                    row["renewed_at"] or "-",
                    row["revoked_at"] or "-",
                ]
                for row in rows
            ],
        ),
        end="",
    )
    return 0


async def _enforcer_revoke(args: argparse.Namespace, stub: Any) -> int:
    request = identity_service_pb2.RevokeEnforcerRequest(enforcer_id=args.node, reason=args.reason)
    response = await stub.RevokeEnforcer(request, timeout=CALL_TIMEOUT_S)
    result = {
        "enforcer_id": args.node,
        "serial": response.revocation.serial,
        "revoked_at": _time(response.revocation.revoked_at),
        "revocation_list_sequence_number": response.revocation_list_sequence_number,
    }
    if args.output == "json":
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(f"enforcer {args.node} revoked (certificate {result['serial']})")
    return 0


async def _bundle_show(args: argparse.Namespace, stub: Any) -> int:
    response = await stub.GetTrustBundle(
        identity_service_pb2.GetTrustBundleRequest(), timeout=CALL_TIMEOUT_S
    )
    certificates = [
        x509.load_der_x509_certificate(der) for der in response.bundle.ca_certificates_der
    ]
    if args.output == "pem":
        for cert in certificates:
            print(cert.public_bytes(serialization.Encoding.PEM).decode(), end="")
        return 0
    cas = [
        {
            "subject": cert.subject.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(timespec="seconds"),
            "not_after": cert.not_valid_after_utc.isoformat(timespec="seconds"),
            "sha256": cert.fingerprint(hashes.SHA256()).hex(),
        }
        for cert in certificates
    ]
    revocations = [
        {
            "serial": r.serial,
            "spiffe_id": r.spiffe_id,
            "enforcer_id": r.enforcer_id,
            "revoked_at": _time(r.revoked_at),
            "certificate_not_after": _time(r.certificate_not_after),
            "reason": r.reason,
        }
        for r in response.revocations.revocations
    ]
    if args.output == "json":
        json.dump(
            {
                "trust_domain": response.bundle.trust_domain,
                "bundle_sequence_number": response.bundle.sequence_number,
                "ca_certificates": cas,
                "revocation_list_sequence_number": response.revocations.sequence_number,
                "revocations": revocations,
            },
            sys.stdout,
            indent=2,
        )
        print()
        return 0
    print(
        f"trust domain {response.bundle.trust_domain} "
        f"(bundle #{response.bundle.sequence_number}, "
        f"revocations #{response.revocations.sequence_number})"
    )
    print(
        table(
            ["CA", "NOT AFTER", "SHA256"],
            [[ca["subject"], ca["not_after"], ca["sha256"]] for ca in cas],
        ),
        end="",
    )
    if revocations:
        print(
            table(
                ["REVOKED SERIAL", "ENFORCER", "REVOKED AT", "REASON"],
                [
                    [r["serial"], r["enforcer_id"], r["revoked_at"], r["reason"]]
                    for r in revocations
                ],
            ),
            end="",
        )
    return 0
