"""PU commands, served by this host's enforcer over its local API (a Unix socket, root only):

    trustwire pu add --netns NAME --namespace NS --label k=v ... [--port name:number]
                     [--name NAME] [--fail-mode open|closed]
    trustwire pu rm PU_ID
    trustwire pu list [-o table|json]

(``trustwire run`` is in ``run_command.py``.)

The socket is ``--socket``, else ``$TRUSTWIRE_ENFORCER_SOCKET``, else the enforcer's default
``/run/trustwire/enforcer.sock``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from trustwire.api.common.v1 import network_pb2, workload_pb2
from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.errors import InvalidArgument
from trustwire_enforcer.local_api import LocalApiClient

from .tables import table

__all__ = ["client_for", "parse_labels", "parse_ports", "register", "socket_option"]

SOCKET_ENV = "TRUSTWIRE_ENFORCER_SOCKET"
DEFAULT_SOCKET = Path("/run/trustwire/enforcer.sock")
_STATES = {
    local_pb.LOCAL_PU_STATE_PENDING: "pending",
    local_pb.LOCAL_PU_STATE_ENFORCED: "enforced",
    local_pb.LOCAL_PU_STATE_FAILED: "failed",
}


def register(sub: Any) -> None:
    pu = sub.add_parser("pu", help="PUs of this host's enforcer (local API)")
    verbs = pu.add_subparsers(dest="pu_command", metavar="VERB", parser_class=type(pu))
    verbs.required = True

    add = verbs.add_parser("add", help="enforce a network namespace (a pod) as a PU")
    add.add_argument("--netns", required=True, help="name under /run/netns, or a path")
    add.add_argument("--namespace", required=True, help="the PU's namespace")
    add.add_argument("--label", action="append", default=[], metavar="K=V", help="repeatable")
    add.add_argument("--name", default="", help="PU name (default: the netns name)")
    add.add_argument(
        "--port", action="append", default=[], metavar="NAME:NUMBER", help="served TCP port"
    )
    add.add_argument("--fail-mode", choices=("closed", "open"), default="closed")
    add.add_argument("-o", "--output", choices=("table", "json"), default="table")
    socket_option(add)
    add.set_defaults(handler=run_add)

    rm = verbs.add_parser("rm", help="stop enforcing a PU and deregister it")
    rm.add_argument("pu_id")
    socket_option(rm)
    rm.set_defaults(handler=run_rm)

    listing = verbs.add_parser("list", help="the PUs this enforcer serves")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    socket_option(listing)
    listing.set_defaults(handler=run_list)


def socket_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        type=Path,
        help=f"local API socket (default ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )


def client_for(args: argparse.Namespace) -> LocalApiClient:
    path = args.socket or Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)
    return LocalApiClient(path)


def parse_labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--label: expected KEY=VALUE, got {value!r}", field="--label")
        labels[key] = val
    return labels


def parse_ports(values: list[str]) -> list[pu_pb.NamedPort]:
    ports = []
    for value in values:
        name, _, number = value.rpartition(":")
        if not number.isdigit() or not 1 <= int(number) <= 65535:
            raise InvalidArgument(f"--port: expected NAME:NUMBER, got {value!r}", field="--port")
        ports.append(
            pu_pb.NamedPort(name=name, protocol=network_pb2.PROTOCOL_TCP, number=int(number))
        )
    return ports


_TYPES = {
    workload_pb2.PROCESSING_UNIT_TYPE_POD: "pod",
    workload_pb2.PROCESSING_UNIT_TYPE_PROCESS: "process",
}


def _row(
    pu: pu_pb.ProcessingUnit,
    state: str,
    revision: int,
    local: local_pb.LocalPu | None = None,
) -> dict[str, Any]:
    row = {
        "id": pu.id,
        "name": pu.name,
        "namespace": pu.namespace,
        "type": _TYPES.get(pu.type, "unknown"),
        "ips": list(pu.ips),
        "labels": dict(sorted(pu.labels.items())),
        "fail_mode": "open" if pu.fail_mode == pu_pb.FAIL_MODE_OPEN else "closed",
        "state": state,
        "applied_revision": revision,
    }
    if local is not None:
        row["attested_labels"] = dict(sorted(local.attested_labels.items()))
        if local.pid:
            row["pid"] = local.pid
            row["cgroup"] = local.cgroup_path
    return row


def _print(rows: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2))
        return
    print(
        table(
            ["ID", "NAMESPACE", "TYPE", "IPS", "LABELS", "FAIL MODE", "STATE"],
            [
                [
                    r["id"],
                    r["namespace"],
                    r["type"],
                    ",".join(r["ips"]),
                    ",".join(f"{k}={v}" for k, v in r["labels"].items()),
                    r["fail_mode"],
                    r["state"],
                ]
                for r in rows
            ],
        ),
        end="",
    )


def run_add(args: argparse.Namespace) -> int:
    netns = args.netns if "/" in args.netns else f"/run/netns/{args.netns}"
    request = local_pb.AddPuRequest(
        netns_path=netns,
        name=args.name,
        namespace=args.namespace,
        labels=parse_labels(args.label),
        ports=parse_ports(args.port),
        fail_mode=pu_pb.FAIL_MODE_OPEN if args.fail_mode == "open" else pu_pb.FAIL_MODE_CLOSED,
    )
    body = asyncio.run(client_for(args).call("AddPu", request.SerializeToString()))
    pu = local_pb.AddPuResponse.FromString(body).pu
    _print([_row(pu, "added", 0)], args.output)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    request = local_pb.RemovePuRequest(pu_id=args.pu_id)
    asyncio.run(client_for(args).call("RemovePu", request.SerializeToString()))
    print(f"pu {args.pu_id} removed")
    return 0


def run_list(args: argparse.Namespace) -> int:
    body = asyncio.run(client_for(args).call("ListPus", b""))
    response = local_pb.ListPusResponse.FromString(body)
    rows = [
        _row(local.pu, _STATES.get(local.state, "unknown"), local.applied_revision, local)
        for local in response.pus
    ]
    _print(rows, args.output)
    return 0
