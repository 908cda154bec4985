"""`trustwire apply|get|delete` and the live (`--server`) mode of `explain`/`simulate`: the
same verbs over the policy service's API.

Where the server is: ``--server ADDR``, else ``$TRUSTWIRE_SERVER``, else ``policy.address``
of the connection file (``$TRUSTWIRE_CONFIG`` or ``~/.trustwire/config``, written by the
identity service; this command adds the ``policy:`` section to its format)::

    trust_domain: cluster-a.example
    identity: {address: localhost:8443}
    policy: {address: localhost:8445}
    ca_bundle: bundle.pem           # paths relative to the file
    certificate: admin.crt
    key: admin.key

With TLS material in the file, calls use mutual TLS; without, plaintext (local development on
loopback). Exit codes as everywhere: 2 for bad input, 1 when the server cannot be reached
(naming the address) or refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from google.protobuf import json_format

from trustwire.api.common.v1 import decision_pb2 as dpb
from trustwire.api.common.v1 import network_pb2, pagination_pb2, resource_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import InvalidArgument, Unavailable
from trustwire.policy import (
    Action,
    Cluster,
    Decision,
    Direction,
    DirectionDecision,
    Endpoint,
    Namespace,
    ReasonCode,
    Workload,
    parse_documents,
    read_sources,
)
from trustwire.policy.simulation import ProbeResult, parse_port, parse_probe
from trustwire.runtime import ClientTLS, create_channel
from trustwire_policy.api.apply_errors import register_apply_errors
from trustwire_policy.codec import resource_to_document

from . import policy_commands
from .tables import table

__all__ = ["register"]

SERVER_ENV = "TRUSTWIRE_SERVER"
CONFIG_ENV = "TRUSTWIRE_CONFIG"
CALL_TIMEOUT_S = 30.0

_T = TypeVar("_T")

_KINDS: dict[str, Any] = {
    "policies": None,
    "policy": None,
    "networkaccesspolicies": resource_pb2.RESOURCE_KIND_NETWORK_ACCESS_POLICY,
    "networkaccesspolicy": resource_pb2.RESOURCE_KIND_NETWORK_ACCESS_POLICY,
    "nap": resource_pb2.RESOURCE_KIND_NETWORK_ACCESS_POLICY,
    "networkpolicies": resource_pb2.RESOURCE_KIND_KUBERNETES_NETWORK_POLICY,
    "networkpolicy": resource_pb2.RESOURCE_KIND_KUBERNETES_NETWORK_POLICY,
    "netpol": resource_pb2.RESOURCE_KIND_KUBERNETES_NETWORK_POLICY,
    "namespaces": resource_pb2.RESOURCE_KIND_NAMESPACE,
    "namespace": resource_pb2.RESOURCE_KIND_NAMESPACE,
    "ns": resource_pb2.RESOURCE_KIND_NAMESPACE,
    "tiers": resource_pb2.RESOURCE_KIND_TIER,
    "tier": resource_pb2.RESOURCE_KIND_TIER,
    "externalnetworks": resource_pb2.RESOURCE_KIND_EXTERNAL_NETWORK,
    "externalnetwork": resource_pb2.RESOURCE_KIND_EXTERNAL_NETWORK,
}
_GET_KINDS = sorted({*_KINDS, "pus", "pu", "enforcers", "enforcer"})


# ------------------------------------------------------------------------ connection


@dataclass(frozen=True)
class Target:
    address: str
    tls: ClientTLS | None


def resolve_target(flag: str | None, environ: dict[str, str] | None = None) -> Target:
    env = os.environ if environ is None else environ
    path = Path(env.get(CONFIG_ENV) or Path.home() / ".trustwire" / "config")
    config: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise InvalidArgument(f"{path}: not valid YAML: {error}", field=str(path)) from None
        config = loaded if isinstance(loaded, dict) else {}
    policy = config.get("policy")
    address = (
        flag
        or env.get(SERVER_ENV)
        or (str(policy.get("address", "")) if isinstance(policy, dict) else "")
    )
    if not address:
        raise InvalidArgument(
            f"no policy server: pass --server HOST:PORT, set {SERVER_ENV}, or add "
            f"policy.address to {path}",
            field="--server",
        )
    tls = None
    if all(config.get(k) for k in ("ca_bundle", "certificate", "key")):
        base = path.parent
        tls = ClientTLS.from_files(
            base / str(config["ca_bundle"]),
            base / str(config["certificate"]),
            base / str(config["key"]),
        )
    return Target(address, tls)


def _call(target: Target, work: Callable[[Any], Awaitable[_T]]) -> _T:
    # A rejected Apply then raises one DocumentError listing every problem the server found
    # (main prints each), not just the first.
    register_apply_errors()

    async def run() -> _T:
        async with create_channel(target.address, target.tls) as channel:
            try:
                return await work(service_grpc.PolicyServiceStub(channel))
            except Unavailable as error:
                raise Unavailable(
                    f"cannot reach the policy server at {target.address}: {error.message}",
                    reason=error.reason,
                ) from None

    return asyncio.run(run())


# -------------------------------------------------------------------------- register


def register(sub: Any) -> None:
    server_help = f"policy server HOST:PORT (default: ${SERVER_ENV} or the config file)"

    apply = sub.add_parser("apply", help="create or update resources from YAML files")
    apply.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML file or directory (repeatable); - reads stdin; all in one transaction",
    )
    apply.add_argument("--dry-run", action="store_true", help="show the diff; write nothing")
    apply.add_argument(
        "--wait", action="store_true", help="return once every enforcer applied the change"
    )
    apply.add_argument("--timeout", type=float, default=60.0, help="--wait deadline, seconds")
    apply.add_argument("-o", "--output", choices=("text", "json"), default="text")
    apply.add_argument("--server", help=server_help)
    apply.set_defaults(handler=run_apply)

    get = sub.add_parser("get", help="list stored resources, PUs or enforcers")
    get.add_argument("kind", metavar="KIND", choices=_GET_KINDS, help="|".join(_GET_KINDS))
    get.add_argument("name", nargs="?", metavar="NAME")
    get.add_argument("-n", "--namespace", default="")
    get.add_argument("-o", "--output", choices=("table", "yaml", "json"), default="table")
    get.add_argument("--server", help=server_help)
    get.set_defaults(handler=run_get)

    delete = sub.add_parser("delete", help="delete one resource")
    delete.add_argument(
        "kind", metavar="KIND", choices=sorted(k for k in _KINDS if _KINDS[k] is not None)
    )
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("-n", "--namespace", default="")
    delete.add_argument("--server", help=server_help)
    delete.set_defaults(handler=run_delete)

    # explain/simulate keep their file mode unchanged; without -f they ask the server.
    for name, live in (("explain", run_live_explain), ("simulate", run_live_simulate)):
        parser = sub.choices[name]
        parser.add_argument("--server", help=server_help)
        file_mode = parser.get_default("handler")
        parser.set_defaults(handler=_dispatch(name, file_mode, live))


def _dispatch(
    name: str,
    file_mode: Callable[[argparse.Namespace], int],
    live: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        if args.filename:
            if args.server:
                raise InvalidArgument("-f and --server exclude each other", field="--server")
            return file_mode(args)
        try:
            resolve_target(args.server)
        except InvalidArgument:
            # Nothing points at a server: the file-mode usage error, as before live mode.
            raise InvalidArgument(
                f"{name}: the following arguments are required: -f/--filename "
                "(or --server HOST:PORT for the live state)",
                field="-f",
            ) from None
        return live(args)

    return handler


# ----------------------------------------------------------------------------- apply


def run_apply(args: argparse.Namespace) -> int:
    sources = read_sources(args.filename)
    parse_documents(sources)  # validate locally first: errors name the real file
    text = "\n---\n".join(t for _, t in sources)
    name = ", ".join(s for s, _ in sources)
    target = resolve_target(args.server)

    async def work(stub: Any) -> int:
        request = pb.ApplyRequest(
            yaml=pb.YamlDocuments(text=text, source_name=name), dry_run=args.dry_run
        )
        response = await stub.Apply(request, timeout=CALL_TIMEOUT_S)
        if args.output == "json":
            json.dump(json_format.MessageToDict(response), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            _print_apply(response, dry_run=args.dry_run)
        if args.wait and not args.dry_run:
            return await _wait_for_acks(stub, response.revision, args.timeout)
        return 0

    return _call(target, work)


_CHANGE_WORDS = {
    pb.CHANGE_TYPE_CREATED: "created",
    pb.CHANGE_TYPE_UPDATED: "configured",
    pb.CHANGE_TYPE_UNCHANGED: "unchanged",
    pb.CHANGE_TYPE_DELETED: "deleted",
}


def _ref_text(ref: Any) -> str:
    kind = resource_pb2.ResourceKind.Name(ref.kind).removeprefix("RESOURCE_KIND_")
    kind = kind.replace("_", "").lower()
    return f"{kind}/{ref.namespace + '/' if ref.namespace else ''}{ref.name}"


def _print_apply(response: Any, *, dry_run: bool) -> None:
    suffix = " (dry run)" if dry_run else ""
    for change in response.changes:
        print(f"{_ref_text(change.ref)} {_CHANGE_WORDS.get(change.change, '?')}{suffix}")
        if dry_run and change.diff:
            sys.stdout.write(change.diff)
    if dry_run:
        if response.impacts:
            rows = [
                [
                    i.connection.source.pu_id or i.connection.source.ip,
                    i.connection.destination.pu_id or i.connection.destination.ip,
                    f"{network_pb2.Protocol.Name(i.connection.protocol).removeprefix('PROTOCOL_')}"
                    f"/{i.connection.destination_port}",
                    _verdict_text(i.before),
                    _verdict_text(i.after),
                ]
                for i in response.impacts
            ]
            print("flows whose verdict would change:")
            sys.stdout.write(table(["FROM", "TO", "PORT", "BEFORE", "AFTER"], rows))
        else:
            print("no flow between registered PUs changes verdict")
    print(f"revision {response.revision}")


def _verdict_text(explanation: Any) -> str:
    if explanation.verdict != dpb.VERDICT_ALLOW:
        return "reject"
    return "encrypt" if explanation.encrypted else "allow"


async def _wait_for_acks(stub: Any, revision: int, wait_s: float) -> int:
    """Poll ListEnforcers until every enforcer acked ``revision`` (none: at once)."""
    deadline = time.monotonic() + wait_s
    while True:
        lagging = [e.id for e in await _all_enforcers(stub) if e.status.acked_revision < revision]
        if not lagging:
            print(f"every enforcer applied revision {revision}")
            return 0
        if time.monotonic() >= deadline:
            shown = ", ".join(lagging[:10]) + (" ..." if len(lagging) > 10 else "")
            print(
                f"trustwire: {len(lagging)} enforcer(s) had not applied revision {revision} "
                f"after {wait_s:g} s: {shown}",
                file=sys.stderr,
            )
            return 1
        await asyncio.sleep(0.2)


async def _all_enforcers(stub: Any) -> list[Any]:
    out: list[Any] = []
    token = ""
    while True:
        page = await stub.ListEnforcers(
            pb.ListEnforcersRequest(page=pagination_pb2.PageRequest(page_token=token)),
            timeout=CALL_TIMEOUT_S,
        )
        out.extend(page.enforcers)
        token = page.page.next_page_token
        if not token:
            return out


# ------------------------------------------------------------------------ get, delete


def run_get(args: argparse.Namespace) -> int:
    target = resolve_target(args.server)
    kind = args.kind

    async def work(stub: Any) -> int:
        if kind in ("pus", "pu"):
            items = await _pages(
                lambda token: stub.ListPus(
                    pb.ListPusRequest(
                        namespace=args.namespace,
                        page=pagination_pb2.PageRequest(page_token=token),
                    ),
                    timeout=CALL_TIMEOUT_S,
                ),
                "pus",
            )
            items = [p for p in items if not args.name or args.name in (p.id, p.name)]
            _print_records(
                items,
                args.output,
                _pu_row,
                ["ID", "NAMESPACE", "NAME", "ENFORCER", "TYPE", "IPS", "FAIL-MODE"],
            )
            return 0
        if kind in ("enforcers", "enforcer"):
            items = [e for e in await _all_enforcers(stub) if not args.name or e.id == args.name]
            _print_records(
                items,
                args.output,
                _enforcer_row,
                ["ID", "NODE", "ACKED", "LAG", "PUS", "CONNECTED", "ERROR"],
            )
            return 0
        kinds = [] if _KINDS[kind] is None else [_KINDS[kind]]
        if args.name:
            resources = [
                (
                    await stub.GetPolicy(
                        pb.GetPolicyRequest(
                            ref=resource_pb2.ResourceRef(
                                kind=kinds[0]
                                if kinds
                                else resource_pb2.RESOURCE_KIND_NETWORK_ACCESS_POLICY,
                                namespace=args.namespace or "default",
                                name=args.name,
                            )
                        ),
                        timeout=CALL_TIMEOUT_S,
                    )
                ).resource
            ]
        else:
            resources = await _pages(
                lambda token: stub.ListPolicies(
                    pb.ListPoliciesRequest(
                        kinds=kinds,
                        namespace=args.namespace,
                        page=pagination_pb2.PageRequest(page_token=token),
                    ),
                    timeout=CALL_TIMEOUT_S,
                ),
                "resources",
            )
        if args.output == "yaml":
            docs = [resource_to_document(r, server_fields=True) for r in resources]
            sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
        else:
            _print_records(
                resources,
                args.output,
                _resource_row,
                ["KIND", "NAMESPACE", "NAME", "TIER", "PRIORITY", "ACTION", "REVISION"],
            )
        return 0

    return _call(target, work)


async def _pages(fetch: Callable[[str], Awaitable[Any]], field: str) -> list[Any]:
    out: list[Any] = []
    token = ""
    while True:
        page = await fetch(token)
        out.extend(getattr(page, field))
        token = page.page.next_page_token
        if not token:
            return out


def _print_records(
    items: list[Any], output: str, row: Callable[[Any], list[str]], headers: list[str]
) -> None:
    if output == "json":
        json.dump([json_format.MessageToDict(i) for i in items], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif output == "yaml":
        sys.stdout.write(
            yaml.safe_dump_all([json_format.MessageToDict(i) for i in items], sort_keys=False)
        )
    elif items:
        sys.stdout.write(table(headers, [row(i) for i in items]))
    else:
        print("no resources found", file=sys.stderr)


def _resource_row(resource: Any) -> list[str]:
    which = resource.WhichOneof("kind")
    message = getattr(resource, which)
    meta = message.metadata
    tier = priority = action = ""
    if which == "network_access_policy":
        tier, priority = message.spec.tier, str(message.spec.priority)
        action = dpb.Action.Name(message.spec.action).removeprefix("ACTION_").lower()
    elif which == "kubernetes_network_policy":
        tier = "kubernetes"
    elif which == "namespace":
        action = "reject" if message.default_action == dpb.ACTION_REJECT else "allow"
    elif which == "tier":
        priority = str(message.order)
    kind = {"kubernetes_network_policy": "NetworkPolicy"}.get(
        which, "".join(p.title() for p in which.split("_"))
    )
    return [
        kind,
        meta.namespace or "-",
        meta.name,
        tier or "-",
        priority or "-",
        action or "-",
        str(meta.revision),
    ]


def _pu_row(pu: Any) -> list[str]:
    return [
        pu.id,
        pu.namespace,
        pu.name,
        pu.enforcer_id,
        "pod" if pu.type == 1 else "process",
        ",".join(pu.ips) or "-",
        "open" if pu.fail_mode == 2 else "closed",
    ]


def _enforcer_row(e: Any) -> list[str]:
    s = e.status
    return [
        e.id,
        e.node or "-",
        str(s.acked_revision),
        str(s.lag_revisions),
        str(s.pu_count),
        "yes" if s.connected else "no",
        s.last_error.reason or "-",
    ]


def run_delete(args: argparse.Namespace) -> int:
    target = resolve_target(args.server)
    kind = _KINDS[args.kind]

    async def work(stub: Any) -> int:
        ref = resource_pb2.ResourceRef(kind=kind, namespace=args.namespace, name=args.name)
        response = await stub.DeletePolicy(pb.DeletePolicyRequest(ref=ref), timeout=CALL_TIMEOUT_S)
        print(f"{_ref_text(response.change.ref)} deleted (revision {response.revision})")
        return 0

    return _call(target, work)


# ------------------------------------------------------------ explain/simulate, live


def _endpoint(spec: str) -> Any:
    try:
        ipaddress.ip_address(spec)
    except ValueError:
        return network_pb2.Endpoint(pu_id=spec)
    return network_pb2.Endpoint(ip=spec)


def _protocol_value(protocol: Any) -> Any:
    return network_pb2.Protocol.Value(f"PROTOCOL_{protocol.value}")


def _connection(source: str, destination: str, protocol: Any, port: int) -> Any:
    return network_pb2.Connection(
        source=_endpoint(source),
        destination=_endpoint(destination),
        protocol=_protocol_value(protocol),
        destination_port=port,
    )


def run_live_explain(args: argparse.Namespace) -> int:
    protocol, port = parse_port(args.port, field="--port")
    probe = parse_probe(f"{args.source},{args.destination},{protocol.value}/{port}")
    target = resolve_target(args.server)

    async def work(stub: Any) -> Any:
        return await stub.Explain(
            pb.ExplainRequest(
                connection=_connection(probe.source, probe.destination, protocol, port)
            ),
            timeout=CALL_TIMEOUT_S,
        )

    response = _call(target, work)
    result = _probe_result(probe, response.explanation)
    if args.output == "json":
        json.dump(policy_commands.result_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(policy_commands.explanation_text(_context_cluster(result), result))
    return 0


def run_live_simulate(args: argparse.Namespace) -> int:
    ports = [parse_port(p, field="--port") for p in args.port]
    probes = [parse_probe(p) for p in args.probe]
    if not ports and not probes:
        raise InvalidArgument("live simulate needs --port PROTO/PORT or --probe", field="--port")
    target = resolve_target(args.server)

    async def work(stub: Any) -> tuple[list[str], Any]:
        keys: list[str] = []
        if ports:
            pus = await _pages(
                lambda token: stub.ListPus(
                    pb.ListPusRequest(page=pagination_pb2.PageRequest(page_token=token)),
                    timeout=CALL_TIMEOUT_S,
                ),
                "pus",
            )
            keys = sorted(f"{p.namespace}/{p.name or p.id}" for p in pus)
        connections = [
            _connection(s, d, protocol, port)
            for protocol, port in ports
            for s in keys
            for d in keys
        ] + [_connection(p.source, p.destination, p.protocol, p.port) for p in probes]
        response = await stub.Simulate(
            pb.SimulateRequest(connections=connections), timeout=CALL_TIMEOUT_S
        )
        return keys, response

    keys, response = _call(target, work)
    all_probes = [
        parse_probe(f"{s},{d},{protocol.value}/{port}")
        for protocol, port in ports
        for s in keys
        for d in keys
    ] + probes
    results = [
        _probe_result(p, impact.before)
        for p, impact in zip(all_probes, response.impacts, strict=True)
    ]
    if args.output == "json":
        json.dump([policy_commands.result_json(r) for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    cluster = Cluster(
        namespaces={},
        workloads=tuple(Workload(k.split("/", 1)[0], k.split("/", 1)[1]) for k in keys),
    )
    policy_commands.print_simulation(cluster, ports, results)
    return 0


# The server answers with an Explanation; the CLI's renderers take domain values. The
# rebuilt values carry what the Explanation has (no overridden_policy, addresses only when
# the request named them).


def _probe_result(probe: Any, explanation: Any) -> ProbeResult:
    return ProbeResult(
        probe,
        _endpoint_of(probe.source),
        _endpoint_of(probe.destination),
        _decision(explanation),
    )


def _endpoint_of(spec: str) -> Endpoint:
    try:
        return Endpoint(workload=None, ip=ipaddress.ip_address(spec))
    except ValueError:
        namespace, _, name = spec.rpartition("/")
        return Endpoint(workload=Workload(namespace or "default", name), ip=None)


def _policy_key(ref: Any) -> str | None:
    if not ref.name:
        return None
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name


def _direction(message: Any, present: bool) -> DirectionDecision | None:
    if not present:
        return None
    name = dpb.ReasonCode.Name(message.reason).removeprefix("REASON_CODE_")
    reason = ReasonCode(name) if name in ReasonCode.__members__ else ReasonCode.NO_ENFORCER
    policy = _policy_key(message.policy)
    return DirectionDecision(
        direction=(
            Direction.INGRESS if message.direction == dpb.DIRECTION_INGRESS else Direction.EGRESS
        ),
        allowed=message.verdict == dpb.VERDICT_ALLOW,
        encrypted=message.encrypted,
        reason=reason,
        tier=message.tier or None,
        policy=policy,
        rule=message.rule_index if policy is not None else None,
        observed_allowed=message.observed_verdict != dpb.VERDICT_REJECT,
        observed_policy=_policy_key(message.observed_policy),
    )


def _decision(explanation: Any) -> Decision:
    return (
        Decision.combine(
            _direction(explanation.egress, explanation.HasField("egress")),
            _direction(explanation.ingress, explanation.HasField("ingress")),
            explanation.revision,
        )
        if explanation.HasField("egress") or explanation.HasField("ingress")
        else Decision(
            allowed=explanation.verdict == dpb.VERDICT_ALLOW,
            encrypted=explanation.encrypted,
            reason=ReasonCode.SELF_TRAFFIC,
            egress=None,
            ingress=None,
            revision=explanation.revision,
        )
    )


def _context_cluster(result: ProbeResult) -> Cluster:
    """Just enough cluster for the text renderer: the namespace default it may name."""
    namespaces: dict[str, Namespace] = {}
    for side, endpoint in (
        (result.decision.egress, result.source),
        (result.decision.ingress, result.destination),
    ):
        if side is not None and endpoint.workload is not None:
            default = (
                Action.REJECT
                if side.reason is ReasonCode.NAMESPACE_DEFAULT_REJECT
                else Action.ALLOW
            )
            ns = endpoint.workload.namespace
            namespaces[ns] = Namespace.make(ns, default_action=default)
    return Cluster(namespaces=namespaces, workloads=())
