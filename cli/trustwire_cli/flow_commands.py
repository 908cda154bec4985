"""`trustwire flows` (stored flow records) and `trustwire suggest` (policies from them).

The server is found as for every live command (``--server``, ``$TRUSTWIRE_SERVER``, the
connection file; see ``live_commands``). Exit codes: 2 for bad input, 1 when the server cannot
be reached (naming it) or refuses.

Any policy replica answers for the whole cluster. When some replicas could not be asked, the
records shown are what the others hold and one line on stderr names the missing replicas
(exit code still 0: a partial view of telemetry is still useful, and scripts see the warning).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import json_format

from trustwire.api.common.v1 import decision_pb2 as decision_pb
from trustwire.api.common.v1 import pagination_pb2
from trustwire.api.flow.v1 import flow_service_pb2 as flow_pb
from trustwire.api.flow.v1 import flow_service_pb2_grpc as flow_grpc
from trustwire.api.policy.v1 import policy_service_pb2 as policy_pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as policy_grpc
from trustwire.errors import InvalidArgument, Unavailable
from trustwire.flows import (
    FlowFilter,
    FlowRecord,
    Verdict,
    filter_to_proto,
    record_from_proto,
    timestamp_to_proto,
)
from trustwire.runtime import create_channel

from .live_commands import CALL_TIMEOUT_S, SERVER_ENV, Target, resolve_target
from .tables import table

__all__ = ["parse_duration", "register"]

_T = TypeVar("_T")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_FLOW_HEADERS = [
    "TIME",
    "SOURCE",
    "DESTINATION",
    "PORT",
    "VERDICT",
    "OBSERVED",
    "ENCRYPTED",
    "POLICY",
    "REASON",
    "BYTES",
    "CONNS",
    "TRACE ID",
]


def parse_duration(text: str, *, flag: str) -> timedelta:
    """``90s``, ``10m``, ``1h30m``, ``2d``: a positive duration, else ``InvalidArgument``."""
    pos = 0
    total = timedelta(0)
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text) or total <= timedelta(0):
        raise InvalidArgument(
            f"{flag}: invalid duration {text!r} (examples: 30s, 10m, 1h30m, 2d)", field=flag
        )
    return total


def register(sub: Any) -> None:
    server_help = f"policy server HOST:PORT (default: ${SERVER_ENV} or the config file)"

    flows = sub.add_parser("flows", help="show observed flow records, newest first")
    flows.add_argument("--denied", action="store_true", help="only rejected flows")
    flows.add_argument("--since", default="10m", help="how far back (default 10m)")
    flows.add_argument("--pu", metavar="NAME", help="PU id, or NAMESPACE/NAME (either side)")
    flows.add_argument("--policy", metavar="NAME", help="deciding or observing policy")
    flows.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    flows.add_argument("-o", "--output", choices=("table", "json"), default="table")
    flows.add_argument("--server", help=server_help)
    flows.set_defaults(handler=run_flows)

    suggest = sub.add_parser(
        "suggest", help="print NetworkAccessPolicies that allow the observed flows (YAML)"
    )
    suggest.add_argument("--since", default="1h", help="flows of this last period (default 1h)")
    suggest.add_argument(
        "-n", "--namespace", default="", help="only destinations in this namespace"
    )
    suggest.add_argument(
        "--label-key",
        action="append",
        default=[],
        metavar="KEY",
        help="label keys that identify a workload (repeatable; default app)",
    )
    suggest.add_argument("--tier", default="", help="tier of the policies (default application)")
    suggest.add_argument(
        "--observe", action="store_true", help="stage as action observe (observeAction allow)"
    )
    suggest.add_argument("--server", help=server_help)
    suggest.set_defaults(handler=run_suggest)


def _call(target: Target, work: Callable[[Any], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        async with create_channel(target.address, target.tls) as channel:
            try:
                return await work(channel)
            except Unavailable as error:
                raise Unavailable(
                    f"cannot reach the policy server at {target.address}: {error.message}",
                    reason=error.reason,
                ) from None

    return asyncio.run(run())


# ------------------------------------------------------------------------------ flows


def run_flows(args: argparse.Namespace) -> int:
    since = parse_duration(args.since, flag="--since")
    if args.limit < 1:
        raise InvalidArgument("--limit: must be at least 1", field="--limit")
    target = resolve_target(args.server)
    now = datetime.now(UTC)

    async def work(channel: Any) -> int:
        pu_ids = frozenset([await _pu_id(channel, args.pu)]) if args.pu else frozenset()
        flow_filter = FlowFilter(
            pu_ids=pu_ids,
            verdicts=frozenset({Verdict.REJECT}) if args.denied else frozenset(),
            policy=args.policy or "",
        )
        stub = flow_grpc.FlowServiceStub(channel)
        messages: list[Any] = []
        unreachable: set[str] = set()
        token = ""
        while len(messages) < args.limit:
            response = await stub.QueryFlows(
                flow_pb.QueryFlowsRequest(
                    filter=filter_to_proto(flow_filter),
                    start_time=timestamp_to_proto(now - since),
                    end_time=timestamp_to_proto(now),
                    page=pagination_pb2.PageRequest(
                        page_size=min(1000, args.limit - len(messages)), page_token=token
                    ),
                ),
                timeout=CALL_TIMEOUT_S,
            )
            messages.extend(response.records)
            unreachable.update(response.unreachable_replicas)
            token = response.page.next_page_token
            if not token:
                break
        messages = messages[: args.limit]
        if unreachable:
            print(
                "warning: policy replicas not reached, their flows are missing: "
                + ", ".join(sorted(unreachable)),
                file=sys.stderr,
            )
        if args.output == "json":
            json.dump([json_format.MessageToDict(m) for m in messages], sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            rows = [_row(record_from_proto(m)) for m in messages]
            sys.stdout.write(table(_FLOW_HEADERS, rows))
        return 0

    return _call(target, work)


async def _pu_id(channel: Any, value: str) -> str:
    """``NAMESPACE/NAME`` resolved to the PU's id through ``ListPus``; anything else is an id."""
    namespace, slash, name = value.partition("/")
    if not slash:
        return value
    stub = policy_grpc.PolicyServiceStub(channel)
    token = ""
    while True:
        page = await stub.ListPus(
            policy_pb.ListPusRequest(
                namespace=namespace, page=pagination_pb2.PageRequest(page_token=token)
            ),
            timeout=CALL_TIMEOUT_S,
        )
        for pu in page.pus:
            if pu.name == name or pu.id == name:
                return str(pu.id)
        token = page.page.next_page_token
        if not token:
            raise InvalidArgument(f"--pu: no PU {value!r}", field="--pu")


def _row(r: FlowRecord) -> list[str]:
    d = r.decision
    policy = d.policy or ""
    if d.observed_policy and d.observed_policy != d.policy:
        policy = f"{policy} (observed: {d.observed_policy})" if policy else d.observed_policy
    return [
        r.window_end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        r.source.display(),
        r.destination.display(),
        f"{r.protocol.value}/{r.port}",
        d.verdict.value,
        d.observed_verdict.value if d.observed_verdict else "-",
        "yes" if d.encrypted else "no",
        policy or "-",
        d.reason,
        f"{r.bytes_sent}/{r.bytes_received}",
        str(r.connection_count),
        r.trace_id or "-",
    ]


# ---------------------------------------------------------------------------- suggest


def run_suggest(args: argparse.Namespace) -> int:
    since = parse_duration(args.since, flag="--since")
    target = resolve_target(args.server)
    now = datetime.now(UTC)

    async def work(channel: Any) -> int:
        response = await policy_grpc.PolicyServiceStub(channel).Suggest(
            policy_pb.SuggestRequest(
                namespace=args.namespace,
                start_time=timestamp_to_proto(now - since),
                end_time=timestamp_to_proto(now),
                label_keys=args.label_key,
                tier=args.tier,
                action=decision_pb.ACTION_OBSERVE if args.observe else decision_pb.ACTION_ALLOW,
            ),
            timeout=CALL_TIMEOUT_S,
        )
        if response.unreachable_replicas:
            print(
                "warning: policy replicas not reached, suggestions ignore their flows: "
                + ", ".join(sorted(response.unreachable_replicas)),
                file=sys.stderr,
            )
        if not response.suggestions:
            print("# no allowed flows to suggest policies for in this period", file=sys.stderr)
            return 0
        sys.stdout.write(response.yaml)
        return 0

    return _call(target, work)
