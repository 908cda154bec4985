"""Process PUs, the pure parts: the cgroup2 mount, nft's view of a cgroup, the process PU's
ruleset, the local API authorization table, attested labels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.errors import FailedPrecondition
from trustwire_enforcer.api.convert import attestation_of, attested_labels
from trustwire_enforcer.api.local_service import LOCAL_AUTHORIZATION, Access
from trustwire_enforcer.attestation import attest_process
from trustwire_enforcer.datapath.cgroups import (
    CgroupError,
    CgroupMatch,
    TrustwireCgroups,
    cgroup2_mount,
)
from trustwire_enforcer.datapath.rules import PuRuleset, RulesetMode, render_ruleset
from trustwire_enforcer.state_files import StoredPu

HYBRID = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
PURE_V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_the_cgroup2_mount_is_read_from_mountinfo() -> None:
    assert cgroup2_mount(HYBRID) == Path("/sys/fs/cgroup/unified")
    assert cgroup2_mount(PURE_V2) == Path("/sys/fs/cgroup")
    with pytest.raises(CgroupError, match="not mounted"):
        cgroup2_mount(HYBRID.replace("cgroup2", "tmpfs"))


def test_nft_names_a_cgroup_relative_to_sys_fs_cgroup_with_its_level() -> None:
    hybrid = TrustwireCgroups(Path("/sys/fs/cgroup/unified"))
    match = hybrid.match(hybrid.path("node-a.web"))
    assert match == CgroupMatch("unified/trustwire/node-a.web", 2)
    assert match.expression == 'socket cgroupv2 level 2 "unified/trustwire/node-a.web"'
    assert hybrid.relative(hybrid.path("node-a.web")) == "/trustwire/node-a.web"
    pure = TrustwireCgroups(Path("/sys/fs/cgroup"))
    assert pure.match(pure.path("x")) == CgroupMatch("trustwire/x", 2)
    elsewhere = TrustwireCgroups(Path("/mnt/cgroup2"))
    with pytest.raises(CgroupError, match="nft resolves"):
        elsewhere.match(elsewhere.path("x"))
    for bad in ("../x", "a/b", "", "x y"):
        with pytest.raises(CgroupError):
            hybrid.path(bad)
    with pytest.raises(ValueError, match="unusable"):
        CgroupMatch('a"; flush ruleset', 1)


def test_a_process_pu_ruleset_catches_only_its_cgroup_in_every_chain() -> None:
    owned = CgroupMatch("unified/trustwire/node-a.web", 2)
    spec = PuRuleset(table="trustwire_0123", outbound_port=40001, inbound_port=40002, cgroup=owned)
    text = render_ruleset(spec)
    assert text.startswith("table inet trustwire_0123 {")
    catching = [line for line in text.splitlines() if "redirect" in line or "reject" in line]
    assert len(catching) == 5
    assert all(owned.expression in line for line in catching)
    assert "redirect to :40001" in text
    assert "redirect to :40002" in text
    assert "meta mark & 0x0000ffff == 0x00007477 return" in text  # the enforcer's sockets
    assert 'oifname "lo" return' in text
    assert 'iifname "lo" return' in text
    closed = render_ruleset(
        PuRuleset(mode=RulesetMode.CLOSED, table="trustwire_0123", cgroup=owned)
    )
    rejects = [line for line in closed.splitlines() if "reject" in line]
    assert len(rejects) == 2
    assert all(owned.expression in line for line in rejects)
    assert "redirect" not in closed


def test_every_local_api_method_has_an_authorization_entry() -> None:
    methods = {m.name for m in local_pb.DESCRIPTOR.services_by_name["EnforcerLocalService"].methods}
    assert set(LOCAL_AUTHORIZATION) == methods
    assert LOCAL_AUTHORIZATION["AddPu"] is Access.ROOT


def _process_pu() -> StoredPu:
    return StoredPu(
        pu_id="node-a.web",
        name="web",
        namespace="shop",
        netns="/proc/1/ns/net",
        labels={"app": "web"},
        ips=("10.0.0.1",),
        ports=(),
        fail_mode="closed",
        netns_inode=1,
        pu_type="process",
        pid=1,
        cgroup_path="/sys/fs/cgroup/unified/trustwire/node-a.web",
        exe_sha256="ab" * 32,
        uid=1000,
    )


def test_a_process_pu_is_attested_as_a_process_with_its_executable_and_user() -> None:
    pu = _process_pu()
    attestation = attestation_of(pu, "node-a")
    assert attestation.pu_type.value == "process"
    assert attestation.exe_sha256 == "ab" * 32
    assert attestation.uid == 1000
    labels = attested_labels(pu, "node-a", "cluster.test")
    assert labels["pu-type"] == "process"
    assert labels["exe-sha256"] == "ab" * 32
    assert labels["user"] == "1000"
    stored = StoredPu.from_json(pu.to_json())
    assert stored == pu
    legacy = pu.to_json()
    for key in ("pu_type", "pid", "pid_start_time", "cgroup_path", "exe_sha256", "uid"):
        del legacy[key]
    assert StoredPu.from_json(legacy).pu_type == "pod"  # files written before process PUs


def test_attestation_refuses_a_process_that_is_not_the_callers_stopped_child() -> None:
    with pytest.raises(FailedPrecondition, match="not a child"):
        attest_process(os.getpid(), os.getpid(), "/trustwire/x")
