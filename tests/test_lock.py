"""Issue 10.5: the per-host lock.

Liveness is read on the host (boot id + the holder's pid and start time), takeover and
release are atomic, and an I/O error while locking is reported as itself, never as
"another run holds the lock". These run against a real `@local` host (a project
directory of their own); no Docker is needed.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO, rollout

RUN_ID = "20260101T000000Z-unit-0a0b0c"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def start_time(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(") ", 1)[1].split()[19]  # field 22


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path]:
    """A project directory with one unfinished run that changed nothing, and its inventory."""
    project = tmp_path / "project"
    run = project / ".rollout" / "runs" / RUN_ID
    run.mkdir(parents=True)
    (run / "journal.jsonl").write_text(json.dumps({"t": "start", "at": "2026-01-01T00:00:00Z", "run_id": RUN_ID,
                                                   "plan": "unit", "version": 1, "steps": []}) + "\n")
    inv = tmp_path / "inv.py"
    data = {"project_dir": str(project), "compose_file": "docker-compose.yml", "compose_project": "rtlock"}
    inv.write_text(f"app_servers = [(\"@local\", {data!r})]\n")
    return project, inv


def write_lock(project: Path, **fields) -> Path:
    info = {"holder": "someone@elsewhere", "controller": socket.gethostname(), "pid": os.getpid(),
            "since": "2026-01-01T00:00:00Z", "run_id": RUN_ID, "plan": "unit", "boot_id": BOOT_ID,
            "host_pid": os.getpid(), "host_pid_start": start_time(os.getpid()), **fields}
    path = project / ".rollout" / "lock"
    path.write_text(json.dumps(info) + "\n")
    return path


# -- staleness, read on the host ---------------------------------------------------------
@pytest.mark.parametrize("case, fields, stale", [
    # the holder's pid is alive, but it is another process now (its start time differs)
    ("recycled pid", {"host_pid_start": "1"}, True),
    # the host rebooted since: whatever runs under that pid now is not the holder
    ("rebooted", {"boot_id": "00000000-0000-0000-0000-000000000000"}, True),
    # the holder's process on the host is gone
    ("gone", {"host_pid": None}, True),
    # another controller of the same name: its pid means nothing here, its process on the host is alive
    ("same hostname, live holder", {"pid": None}, False),
])
def test_staleness_is_read_on_the_host(case, fields, stale, project):
    project_dir, inv = project
    fields = {k: (dead_pid() if v is None else v) for k, v in fields.items()}
    lock = write_lock(project_dir, **fields)
    result = rollout("unlock", "-i", str(inv))  # no terminal, no --yes: it describes, then refuses
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("STALE" in result.stdout) is stale, result.stdout
    assert ("the holder may still be running" in result.stdout) is not stale
    assert lock.exists()


def test_a_live_holder_blocks_a_rollback_and_a_stale_one_is_taken_over(project):
    project_dir, inv = project
    write_lock(project_dir)  # held by this very test process: alive
    blocked = rollout("rollback", "--run", RUN_ID, "-i", str(inv), "--yes")
    assert blocked.returncode == 4, blocked.stdout + blocked.stderr
    assert "another run holds the lock" in blocked.stderr and "STALE" not in blocked.stderr
    write_lock(project_dir, host_pid=dead_pid())
    taken = rollout("rollback", "--run", RUN_ID, "-i", str(inv), "--yes")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "taking over the stale lock" in taken.stdout
    assert sorted(p.name for p in (project_dir / ".rollout").iterdir()) == ["runs"]  # no lock, no leftovers


# -- atomic takeover ---------------------------------------------------------------------
TAKE_OVER = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import sys, time
    from pathlib import Path
    from orchestrator import lock
    from orchestrator.errors import LockHeld
    from orchestrator.hosts import Connection
    from orchestrator.inventory import load_inventory

    inventory, me, barrier = load_inventory(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    with Connection(inventory, ["@local"]) as (target,):
        stale = lock.read_lock(target)
        (barrier / me).touch()
        while len(list(barrier.iterdir())) < 2:  # both have read the same stale lock
            time.sleep(0.01)
        try:
            lock.take_over(target, stale, f"20260101T000000Z-unit-{me}", "unit")
            print("won")
        except LockHeld:
            print("held")
""")


def test_two_takeovers_of_one_stale_lock_exactly_one_wins(project, tmp_path):
    project_dir, inv = project
    script = tmp_path / "take_over.py"
    script.write_text(TAKE_OVER)
    for round_ in range(3):
        write_lock(project_dir, host_pid=dead_pid())
        barrier = tmp_path / f"barrier{round_}"
        barrier.mkdir()
        procs = [subprocess.Popen([sys.executable, str(script), str(inv), me, str(barrier)], cwd=REPO, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for me in ("aaaaaa", "bbbbbb")]
        outs = [p.communicate(timeout=120) for p in procs]
        verdicts = sorted(out.strip() for out, _ in outs)
        assert verdicts == ["held", "won"], outs
        winner = "aaaaaa" if outs[0][0].strip() == "won" else "bbbbbb"
        assert json.loads((project_dir / ".rollout" / "lock").read_text())["run_id"].endswith(winner)
        assert sorted(p.name for p in (project_dir / ".rollout").iterdir()) == ["lock", "runs"]
        (project_dir / ".rollout" / "lock").unlink()


def test_two_concurrent_rollbacks_exactly_one_proceeds(project):
    project_dir, inv = project
    write_lock(project_dir, host_pid=dead_pid())
    cmd = [sys.executable, "-m", "orchestrator", "rollback", "--run", RUN_ID, "-i", str(inv), "--yes"]
    procs = [subprocess.Popen(cmd, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 4]), outs
    records = [json.loads(line) for line in (project_dir / ".rollout" / "runs" / RUN_ID / "journal.jsonl").read_text().splitlines()]
    assert [r["t"] for r in records].count("rollback_start") == 1, outs  # exactly one undid the run
    assert sum("taking over the stale lock" in out for out in outs) == 1, outs
    assert not (project_dir / ".rollout" / "lock").exists()


# -- I/O errors are themselves, not "held" -----------------------------------------------
@pytest.fixture
def mounted(tmp_path):
    mounts: list[Path] = []
    yield mounts
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", str(m)], check=False)


def test_no_space_for_the_lock_is_reported_as_such(project, mounted, tmp_path):
    project_dir, inv = project
    state = project_dir / ".rollout"
    saved = tmp_path / "saved-state"
    state.rename(saved)
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", str(state)], check=True)
    mounted.append(state)
    subprocess.run(["cp", "-a", f"{saved}/.", str(state)], check=True)
    filler = state / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    result = rollout("rollback", "--run", RUN_ID, "-i", str(inv), "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot take the lock" in result.stderr and "No space left on device" in result.stderr
    assert "another run holds the lock" not in result.stdout + result.stderr
    assert sorted(p.name for p in state.iterdir()) == ["filler", "runs"]  # no lock, no temp file left


def test_a_read_only_state_directory_is_reported_as_such(project, mounted):
    project_dir, inv = project
    state = project_dir / ".rollout"
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    mounted.append(state)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
    result = rollout("rollback", "--run", RUN_ID, "-i", str(inv), "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot take the lock" in result.stderr and "Read-only file system" in result.stderr
    assert "another run holds the lock" not in result.stdout + result.stderr
    assert not (state / "lock").exists()


# -- over SSH: the holder on the host is the connection's sshd session ----------------------
from test_ssh_host import sshd  # noqa: E402,F401 — the real sshd fixture

HOLD_OVER_SSH = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, os, sys
    from orchestrator import lock
    from orchestrator.hosts import Connection
    from orchestrator.inventory import load_inventory

    with Connection(load_inventory(sys.argv[1]), ["127.0.0.1"]) as (target,):
        lock.acquire(target, sys.argv[2], "unit")
        info = lock.read_lock(target)
        comm = open(f"/proc/{info['host_pid']}/comm").read().strip()
        print(json.dumps({"comm": comm, "stale": lock.is_stale(target, info), "mine": info["host_pid"] == os.getpid()}))
    # ends without releasing the lock, like a controller that died
""")


def test_over_ssh_the_lock_names_the_sshd_session_and_is_stale_once_it_is_gone(sshd, project, tmp_path):
    project_dir, _ = project
    data = {"project_dir": str(project_dir), "compose_file": "docker-compose.yml", "compose_project": "rtlock",
            "ssh_port": sshd["port"], "ssh_user": "root", "ssh_key": sshd["key"],
            "ssh_strict_host_key_checking": "off", "ssh_known_hosts_file": "/dev/null"}
    inv = tmp_path / "ssh_inventory.py"
    inv.write_text(f"app_servers = [(\"127.0.0.1\", {data!r})]\n")
    script = tmp_path / "hold.py"
    script.write_text(HOLD_OVER_SSH)
    held = subprocess.run([sys.executable, str(script), str(inv), RUN_ID], cwd=REPO, text=True, capture_output=True,
                          timeout=120)
    assert held.returncode == 0, held.stdout + held.stderr
    seen = json.loads(held.stdout)
    assert seen["comm"].startswith("sshd") and not seen["mine"] and seen["stale"] is False
    # The controller is gone, so is its SSH session: any controller now sees the lock as stale.
    result = rollout("unlock", "-i", str(inv))
    assert "STALE" in result.stdout, result.stdout + result.stderr
    taken = rollout("rollback", "--run", RUN_ID, "-i", str(inv), "--yes")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert not (project_dir / ".rollout" / "lock").exists()
