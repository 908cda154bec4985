"""What the enforcer keeps on disk so that a restart enforces at once, before the control plane
answers: the last applied policy view (with its revision) and the PUs it serves (with their
identity documents).

Both files are written atomically (temporary file, fsync, rename), mode 0600. A file that does
not parse is ignored with a warning: the enforcer then starts without it (its PUs stay fail
closed until the policy stream delivers a view) rather than not starting at all.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trustwire.api.policy.v1 import distribution_pb2, policy_service_pb2
from trustwire_enforcer.policy_state import AppliedPolicy
from trustwire_identity.private_files import write_private
from trustwire_policy.distribution.codec import snapshot_to_proto, view_from_snapshot

__all__ = ["PuFile", "StoredPu", "ViewFile"]

_log = logging.getLogger("trustwire.enforcer.state")


class ViewFile:
    """``policy-view.pb``: a ``WatchPolicyResponse`` holding the revision and the snapshot."""

    def __init__(self, state_dir: Path, enforcer_id: str) -> None:
        self.path = state_dir / "policy-view.pb"
        self._enforcer_id = enforcer_id

    def save(self, policy: AppliedPolicy) -> None:
        message = policy_service_pb2.WatchPolicyResponse(
            revision=policy.revision,
            snapshot=snapshot_to_proto(policy.view, distribution_pb2.SNAPSHOT_REASON_UNSPECIFIED),
        )
        write_private(self.path, message.SerializeToString(deterministic=True))

    def load(self) -> AppliedPolicy | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            message = policy_service_pb2.WatchPolicyResponse.FromString(data)
            view = view_from_snapshot(self._enforcer_id, [message.snapshot])
        except Exception:  # a damaged file must not keep the enforcer from starting
            _log.warning("ignoring unreadable policy view file", extra={"path": str(self.path)})
            return None
        return AppliedPolicy(view, message.revision)


@dataclass(frozen=True)
class StoredPu:
    """A PU as the enforcer registered it, enough to serve it again after a restart."""

    pu_id: str
    name: str
    namespace: str
    netns: str
    labels: dict[str, str]
    ips: tuple[str, ...]
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, number)
    fail_mode: str
    netns_inode: int
    document: bytes = b""  # the identity document envelope as issued
    document_refresh_after: float = 0.0  # Unix seconds: ask for a new document from then
    # Process PUs (``trustwire run``); the defaults describe a network-namespace PU.
    pu_type: str = "pod"  # "pod" | "process"
    pid: int = 0
    pid_start_time: int = 0  # /proc/<pid>/stat start time: the same process after a restart
    cgroup_path: str = ""  # absolute cgroup v2 directory
    exe_sha256: str = ""
    uid: int = -1  # -1: not attested

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["document"] = base64.b64encode(self.document).decode()
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> StoredPu:
        return StoredPu(
            pu_id=str(data["pu_id"]),
            name=str(data["name"]),
            namespace=str(data["namespace"]),
            netns=str(data["netns"]),
            labels={str(k): str(v) for k, v in data["labels"].items()},
            ips=tuple(str(ip) for ip in data["ips"]),
            ports=tuple((str(n), str(p), int(num)) for n, p, num in data["ports"]),
            fail_mode=str(data["fail_mode"]),
            netns_inode=int(data["netns_inode"]),
            document=base64.b64decode(data.get("document", "")),
            document_refresh_after=float(data.get("document_refresh_after", 0.0)),
            pu_type=str(data.get("pu_type", "pod")),
            pid=int(data.get("pid", 0)),
            pid_start_time=int(data.get("pid_start_time", 0)),
            cgroup_path=str(data.get("cgroup_path", "")),
            exe_sha256=str(data.get("exe_sha256", "")),
            uid=int(data.get("uid", -1)),
        )


class PuFile:
    """``pus.json``: every PU served, by id."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "pus.json"

    def save(self, pus: dict[str, StoredPu]) -> None:
        body = {"v": 1, "pus": [pus[k].to_json() for k in sorted(pus)]}
        write_private(self.path, json.dumps(body, sort_keys=True).encode())

    def load(self) -> dict[str, StoredPu]:
        try:
            body = json.loads(self.path.read_text())
            pus = [StoredPu.from_json(item) for item in body["pus"]]
        except FileNotFoundError:
            return {}
        except Exception:
            _log.warning("ignoring unreadable PU file", extra={"path": str(self.path)})
            return {}
        return {pu.pu_id: pu for pu in pus}
