"""Leases (issue 22): a run's holder is judged by its pid only where that pid means the same
process (same host, boot and PID namespace), by its heartbeat everywhere else; writes under a
lease that was taken fail and write nothing; reset refuses a live holder anywhere; report names
holders; a store from before leases opens and resumes."""

import os
import sqlite3
import subprocess
import sys

import pytest
from lease_helpers import OTHER_NS, STUDY, dead_process, make_store, set_columns, take

from odenet.errors import ConfigError, LeaseLost
from odenet.studies import spec_from_sources
from odenet.studies.grace import check_grace, heartbeat_interval
from odenet.studies.spec import StudySpec
from odenet.studies.store import Holder, Lease, Owner, Store, process_identity
from odenet.studies.store.leases import wall_clock


# ---- who holds a run -----------------------------------------------------------------------
def test_a_claim_records_its_holder_and_lease(tmp_path):
    store = make_store(tmp_path)
    lease = Lease.new(30.0)
    before = wall_clock()
    (rid,) = store.claim(1, "sequential", lease=lease)
    holder = store.holders()[rid]
    me = Owner.me()
    ns = os.readlink("/proc/self/ns/pid").split("[")[1].rstrip("]")
    assert (holder.host, holder.pid, holder.identity, holder.pidns, holder.grace) == (
        me.host, os.getpid(), process_identity(os.getpid()), ns, 30.0,
    )  # fmt: skip
    assert before <= holder.heartbeat <= wall_clock()
    with store.connect() as con:
        assert con.execute("SELECT lease FROM runs WHERE id = ?", (rid,)).fetchone()[0] == (
            lease.token
        )
    assert holder.alive(me, wall_clock()) and store.running_elsewhere() == {}
    assert store.reclaim_dead() == []


def test_a_dead_holder_here_is_reclaimed_at_once_despite_a_fresh_heartbeat(tmp_path):
    """The fast path: same host, boot and namespace, pid gone -> no waiting for the grace."""
    store = make_store(tmp_path)
    a, b = store.claim(2, "sequential")
    pid, identity = dead_process()
    set_columns(store, a, pid=pid, owner=identity)  # heartbeat just written: fresh
    assert store.reclaim_dead() == [a]  # b is this live process's
    assert store.run(a).status == "pending" and store.run(b).status == "running"
    assert store.holders().keys() == {b}


def test_a_pid_in_another_namespace_is_judged_by_its_heartbeat_only(tmp_path):
    """A container's PID 1 (or any pid of another namespace) is not this namespace's pid 1:
    dead or alive here says nothing; the heartbeat and the holder's grace decide."""
    store = make_store(tmp_path)
    a, b = store.claim(2, "sequential")
    pid, identity = dead_process()
    set_columns(store, a, pid=pid, owner=identity, pidns=OTHER_NS, grace=5.0)
    set_columns(store, b, pid=1, owner="x:1", pidns=OTHER_NS, grace=5.0)  # pid 1 lives here
    assert store.reclaim_dead() == [] and store.running_elsewhere().keys() == {a, b}
    set_columns(store, a, heartbeat=wall_clock() - 4.0)  # within its grace: still its
    assert store.reclaim_dead() == []
    set_columns(store, a, heartbeat=wall_clock() - 6.0)
    set_columns(store, b, heartbeat=wall_clock() - 6.0)
    assert sorted(store.reclaim_dead()) == sorted([a, b])


@pytest.mark.parametrize("where", ["host", "boot"])
def test_another_host_or_boot_is_judged_by_its_heartbeat(tmp_path, where):
    store = make_store(tmp_path)
    (a,) = store.claim(1, "sequential")
    pid, identity = dead_process()
    if where == "host":
        set_columns(store, a, host="elsewhere", pid=pid, owner=identity)
    else:  # same host and namespace, an earlier boot: its pid means nothing now either
        set_columns(store, a, pid=pid, owner="another-boot:" + identity.split(":")[1])
    assert store.reclaim_dead() == [] and list(store.running_elsewhere()) == [a]
    set_columns(store, a, heartbeat=wall_clock() - 61.0)  # default grace: 60 s
    assert store.reclaim_dead() == [a]


def test_claims_from_before_leases(tmp_path):
    """No heartbeat: on this host the pid decides as it did; from another host the claim
    counts as expired (no process of this version holds it; it was never reclaimed before)."""
    store = make_store(tmp_path)
    a, b, c = store.claim(3, "sequential")
    pid, _ = dead_process()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        no_lease = {"pidns": None, "lease": None, "heartbeat": None, "grace": None}
        set_columns(store, a, pid=pid, owner=None, **no_lease)
        set_columns(store, b, pid=holder.pid, owner=process_identity(holder.pid), **no_lease)
        set_columns(store, c, host="elsewhere", pid=holder.pid, owner=None, **no_lease)
        assert "no heartbeat" in store.running_elsewhere()[b].describe(wall_clock())
        assert sorted(store.reclaim_dead()) == sorted([a, c])
        assert store.holders().keys() == {b}
    finally:
        holder.kill()
        holder.wait()
    assert store.reclaim_dead() == [b]


def test_the_grace_period_is_an_execution_setting_checked_and_sets_the_interval(tmp_path):
    """A study setting (option, TOML) checked when the spec is made, not part of the study's
    identity (a resume with another grace period is the same study)."""
    assert heartbeat_interval(60.0) == 10.0 and heartbeat_interval(4.0) == 1.0
    check_grace(1)
    for bad in (0, 0.5, float("nan"), float("inf"), True, "60"):
        with pytest.raises(ConfigError, match="--lease-grace must be a finite number"):
            check_grace(bad)
    toml = tmp_path / "study.toml"
    toml.write_text("lease-grace = 120\n")
    assert spec_from_sources(toml).lease_grace == 120.0
    assert spec_from_sources(toml, lease_grace=30.0).lease_grace == 30.0  # flags win
    spec = spec_from_sources(None)
    assert spec.lease_grace == 60.0 and spec.differences(spec_from_sources(toml)) == []
    assert StudySpec.from_dict(spec_from_sources(toml).to_dict()).lease_grace == 120.0


def test_writes_under_a_lease_that_was_taken_fail_and_write_nothing(tmp_path):
    store = make_store(tmp_path)
    lease = Lease.new()
    (rid,) = store.claim(1, "sequential", lease=lease)
    set_columns(store, rid, heartbeat=0.0)
    assert store.renew({rid: lease.token}) == {}
    assert store.holders()[rid].heartbeat > wall_clock() - 5  # renewed
    store.record_epoch(rid, {"epoch": 1, "test_acc": 0.1}, lease=lease.token)
    take(store, rid)
    assert store.renew({rid: lease.token}) == {rid: lease.token}
    with pytest.raises(LeaseLost, match=f"run '{rid}' was taken from this process \\(held by "
                       "pid 4242 on host elsewhere \\(pid namespace 4026532999\\)"):  # fmt: skip
        store.record_epoch(rid, {"epoch": 2, "test_acc": 0.2}, lease=lease.token)
    with pytest.raises(LeaseLost):
        store.finish(rid, {"status": "done", "history": []}, lease=lease.token)
    with pytest.raises(LeaseLost):
        store.record_steps(rid, [{"step": 1, "loss": 1.0, "lr": 0.1}], lease=lease.token)
    store.release(rid, lease=lease.token)  # not ours any more: left to its holder
    assert [m["epoch"] for m in store.epochs(rid)] == [1] and store.steps(rid) == []
    assert store.run(rid).status == "running" and store.holders()[rid].host == "elsewhere"
    set_columns(store, rid, status="pending", lease=None)
    with pytest.raises(LeaseLost, match="it is pending now"):
        store.hold(rid, lease.token)


# ---- reset ---------------------------------------------------------------------------------
def test_reset_refuses_a_run_held_anywhere_and_takes_an_expired_one(tmp_path, run_cli):
    store = make_store(tmp_path)
    (rid,) = store.claim(1, "sequential")
    run_dir = store.run_dir(rid)
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"epoch 1")
    set_columns(store, rid, pid=1, pidns=OTHER_NS)  # a container's PID 1, heartbeat fresh
    db = store.path.read_bytes()
    code, out, err = run_cli(["reset", str(tmp_path), rid])
    assert code == 2 and out == ""
    assert err == (
        f"error: run '{rid}' is being trained by pid 1 on host {Owner.me().host} (pid namespace "
        f"{OTHER_NS}), last heartbeat 0 s ago; wait for it to finish (or stop that process) "
        "before resetting it\n"
    )
    assert (run_dir / "checkpoint.pt").read_bytes() == b"epoch 1" and store.path.read_bytes() == db
    set_columns(store, rid, heartbeat=wall_clock() - 61.0)  # silent for longer than its grace
    assert store.reset([rid]) == [rid]
    assert not run_dir.exists() and store.run(rid).status == "pending"
    assert store.holders() == {} and Holder.of(_row(store, rid)) == Holder(
        Owner.me().host, None, None, None, None, None
    )


def test_reset_is_one_transaction_no_claim_comes_in_between(tmp_path, monkeypatch):
    """While reset deletes a run's files it holds the write lock: no process can claim the run
    (or renew, or finish) between the check and the reset rows."""
    import odenet.studies.store.store as store_module

    store = make_store(tmp_path)
    seen = []

    def rmtree(path, ignore_errors):  # another process tries to claim meanwhile
        other = sqlite3.connect(store.path, timeout=0.2)
        try:
            other.execute("BEGIN IMMEDIATE")
            seen.append("claimed")
        except sqlite3.OperationalError as err:
            seen.append(str(err))
        finally:
            other.close()

    monkeypatch.setattr(store_module.shutil, "rmtree", rmtree)
    store.reset([store.runs()[0].id])
    assert seen == ["database is locked"]


def _row(store, run_id):
    with store.connect() as con:
        con.row_factory = sqlite3.Row
        return con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()


# ---- report and old stores ---------------------------------------------------------------
def test_report_says_who_holds_a_running_run(tmp_path, run_cli):
    store = make_store(tmp_path)
    a, b = store.claim(2, "sequential")
    take(store, a)
    set_columns(store, b, pidns=OTHER_NS, heartbeat=wall_clock() - 120.0)
    code, _, err = run_cli(["report", str(tmp_path)])
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("running: ")]
    assert lines == [
        f"running: {a}, held by pid 4242 on host elsewhere (pid namespace {OTHER_NS}), last "
        "heartbeat 0 s ago",
        f"running: {b}, held by pid {os.getpid()} on host {Owner.me().host} (pid namespace "
        f"{OTHER_NS}), last heartbeat 2 min ago; gone: the next `odenet study` on the "
        "directory resumes the run",
    ]
    report = (tmp_path / "report.md").read_text()
    assert f"- {a} is running: pid 4242 on host elsewhere" in report


def test_a_store_from_before_leases_opens_reports_and_resumes(tmp_path, run_cli):
    """The schema and a claim as an odenet before leases left them (a run 'running' under a
    dead pid of this host, no lease columns): report reads it as it is, the study migrates
    the schema, reclaims the run at once and finishes the grid."""
    args = [*STUDY[:8], "1,2", *STUDY[9:], "--out", str(tmp_path)]
    assert run_cli(args)[0] == 0
    store = Store.open(tmp_path)
    first = store.runs()[0].id
    pid, identity = dead_process()
    with store.connect() as con:
        for column in ("pidns", "lease", "heartbeat", "grace"):
            con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        con.execute("UPDATE runs SET status = 'running', pid = ?, owner = ? WHERE id = ?",
                    (pid, identity, first))  # fmt: skip
    code, _, err = run_cli(["report", str(tmp_path)])
    assert code == 0 and f"running: {first}, held by pid {pid} on host " in err
    assert "(no heartbeat: claimed by an odenet without leases); gone: " in err
    code, _, err = run_cli(args)
    assert code == 0, err
    assert Store.open(tmp_path).counts()["done"] == 2
