"""Files the tool writes (issue 6 part 6): owner-only, atomic, and a journal that survives a torn line.

* journal, plan copy, backups and the lock are 0600 in 0700 directories - after a real apply
  and after a SIGKILL;
* writes go through a temp file and a rename: no `*.rollout-tmp*` (nor the compose check's
  `.rollout-check-*`) is ever left behind, and a patched or swapped file keeps its mode;
* (issue 10.3) the temp file is a fresh `mktemp` name (a symlink planted at the old fixed name
  `FILE.rollout-tmp` is never written through) that has its final mode before any data is
  uploaded into it; a `.backup` has the mode of the file it copies; the same over SSH (SFTP
  would create 0644 files); the printed manual-undo commands are shell-quoted;
* a torn last journal line (a crash mid-write) loses no earlier record: rollback, status and
  history still work, and the next record is not glued onto the torn one; a torn line in the
  MIDDLE of a journal is corruption and is reported clearly (exit 2, file and line), never as a
  traceback.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import pytest

from crash import differences, snapshot
from helpers import rollout
from test_ssh_host import sshd  # noqa: F401 - the fixture: a real sshd on 127.0.0.1

PLAN = """\
plan: files
version: 1
title: file safety
hosts: app_servers
steps:
  - id: limits
    compose_limits:
      service: app
      environment: {CACHE_MIDDLEWARE: "on"}
  - id: config
    file_swap:
      source: frontend/next.config.optimized.js
      destination: frontend/next.config.js
  - id: redis
    redis_config:
      service: redis
      persist: live-only  # a password is never written into the compose file
      set:
        maxmemory-policy: allkeys-lru
        requirepass: "file-safety-password"
"""
TORN = '{"at":"2026-01-01T00:00:00Z","id":"redis","kind":"redis_config","step":2,"t":"und'


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def state_modes(project_dir: Path) -> dict[str, int]:
    """Every path under .rollout whose mode is not owner-only (dirs 0700, files 0600)."""
    root = project_dir / ".rollout"
    assert root.is_dir()
    wrong = {}
    for path in [root, *root.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        if mode(path) != want:
            wrong[str(path.relative_to(project_dir))] = oct(mode(path))
    return wrong


def leftovers(project_dir: Path) -> list[str]:
    return sorted(str(p) for p in project_dir.rglob("*") if ".rollout-tmp" in p.name and not p.is_symlink()
                  or p.name.startswith(".rollout-check-"))


def check_files(stack, operator_modes: dict[Path, int]) -> None:
    assert state_modes(stack.project_dir) == {}
    assert leftovers(stack.project_dir) == []
    for path, want in operator_modes.items():
        assert mode(path) == want, f"{path}: {oct(mode(path))}, was {oct(want)}"
        backup = path.with_name(path.name + ".backup")
        if backup.exists():  # a copy of the operator's file is never more readable than the file
            assert mode(backup) & ~want == 0, f"{backup}: {oct(mode(backup))}"


def test_owner_only_atomic_and_torn_journal_on_a_live_stack(demo_stack, tmp_path):
    stack = demo_stack
    inv = str(stack.inventory_path)
    plan = tmp_path / "files.yaml"
    plan.write_text(PLAN)
    swapped = stack.project_dir / "frontend" / "next.config.js"
    stack.compose_path.chmod(0o640)
    swapped.chmod(0o640)
    operator_modes = {stack.compose_path: 0o640, swapped: 0o640}
    before = snapshot(stack)

    # -- a real apply, then a rollback -----------------------------------------------------
    result = rollout("apply", str(plan), "-i", inv, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CACHE_MIDDLEWARE" in stack.compose_path.read_text()  # patched, and still 0640:
    check_files(stack, operator_modes)
    run_dir = next((stack.project_dir / ".rollout" / "runs").iterdir())
    assert {p.name for p in run_dir.iterdir()} == {"journal.jsonl", "plan.yaml", "backups"}
    assert len(list((run_dir / "backups").iterdir())) == 4  # compose, next.config.js, old + new requirepass
    assert not (stack.project_dir / ".rollout" / "lock").exists()
    back = rollout("rollback", str(plan), "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    check_files(stack, operator_modes)
    assert differences(before, snapshot(stack)) == {}

    # -- SIGKILL with every backup written and the files changed ----------------------------
    killed = rollout("apply", str(plan), "-i", inv, "--yes", env={"ROLLOUT_FAULT": "apply:undo:2"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    lock = stack.project_dir / ".rollout" / "lock"
    assert lock.exists() and mode(lock) == 0o600
    check_files(stack, operator_modes)

    # -- a torn last line: the crash happened in the middle of a journal write -----------------
    journal = sorted((stack.project_dir / ".rollout" / "runs").glob("*/journal.jsonl"))[-1]
    kept = journal.read_text().splitlines()
    assert json.loads(kept[-1])["t"] == "undo"
    with journal.open("a") as f:
        f.write(TORN)  # no newline
    status = rollout("status", "-i", inv)
    assert status.returncode == 0 and "files v1" in status.stdout and "INTERRUPTED" in status.stdout, status.stdout + status.stderr
    history = rollout("history", "-i", inv, "--json")
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert [r["outcome"] for r in rows] == ["rolled_back", "interrupted"] and rows[-1]["still_applied"] == 3

    back = rollout("rollback", str(plan), "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rolled back and verified (3 step(s) undone)" in back.stdout + back.stderr
    lines = journal.read_text().splitlines()
    assert lines[:len(kept)] == kept  # no earlier record lost
    assert lines[len(kept)] == TORN  # kept as it was, ended by the next writer ...
    assert json.loads(lines[len(kept) + 1])["t"] == "torn"  # ... which marked it ...
    after = [json.loads(line) for line in lines[len(kept) + 1:]]  # ... and did not glue its record onto it
    assert [r["t"] for r in after][:2] == ["torn", "rollback_start"] and after[-1]["outcome"] == "rolled_back"
    for args in (("status",), ("history",)):
        again = rollout(*args, "-i", inv)
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert "files v1" in again.stdout and "rolled_back" in again.stdout
    assert not lock.exists()
    check_files(stack, operator_modes)
    assert differences(before, snapshot(stack)) == {}

    # -- a bad line in the MIDDLE is corruption, not a crash: a clear error, nothing changed -----
    lines.insert(3, '{"t":"undo","step":0,"undo":{"path":')
    journal.write_text("\n".join(lines) + "\n")
    for args in (("status",), ("history",), ("rollback", str(plan), "--yes"), ("apply", str(plan), "--yes")):
        result = rollout(*args, "-i", inv)
        assert result.returncode == 2, f"{args}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        assert f"journal {journal} is corrupt at line 4" in result.stderr, result.stderr
    assert differences(before, snapshot(stack)) == {}
    assert len(list((stack.project_dir / ".rollout" / "runs").iterdir())) == 2  # the refused apply made no run
    check_files(stack, operator_modes)


# -- units through a real @local Target (no Docker) ------------------------------------------


@pytest.fixture
def target(tmp_path):
    from orchestrator.hosts import Connection
    from orchestrator.inventory import Inventory

    project = tmp_path / "project"
    project.mkdir()
    inventory = Inventory(tmp_path / "inventory.py", {"app_servers": ["@local"]},
                          {"@local": {"project_dir": str(project), "compose_file": "docker-compose.yml",
                                      "compose_project": f"rt{secrets.token_hex(4)}"}})
    with Connection(inventory, ["@local"]) as targets:
        yield targets[0]


def test_read_run_keeps_records_before_a_torn_line(target):
    from orchestrator import journal as jr

    journal = jr.Journal(target, "20260101T000000Z-unit-000001")
    journal.write("start", plan="unit", version=1)
    journal.write("step", step=0, id="a", kind="file_swap")
    journal.write("undo", step=0, id="a", kind="file_swap", undo={"path": "/x", "created": True})
    path = Path(journal.path)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700

    path.write_bytes(path.read_bytes() + b'{"t":"done","st')  # torn mid-write, no newline
    run = jr.read_run(target, journal.run_id)
    assert [r["t"] for r in run.records] == ["start", "step", "undo"] and run.torn
    assert run.outcome == jr.INTERRUPTED and [r["id"] for r in run.pending_undo] == ["a"]

    journal.write("undone", step=0, id="a")  # the next writer ends the torn line and marks it
    raw = path.read_text().splitlines()
    assert raw[3] == '{"t":"done","st' and json.loads(raw[4])["t"] == jr.TORN and json.loads(raw[5])["t"] == "undone"
    run = jr.read_run(target, journal.run_id)
    assert [r["t"] for r in run.records] == ["start", "step", "undo", "undone"] and run.torn
    assert run.pending_undo == []

    journal.write("end", outcome=jr.ROLLED_BACK)  # a clean tail: no second mark
    assert sum('"t":"torn"' in line for line in path.read_text().splitlines()) == 1
    assert jr.read_run(target, journal.run_id).outcome == jr.ROLLED_BACK


def test_read_run_reports_a_corrupt_middle_line(target):
    from orchestrator import journal as jr
    from orchestrator.errors import HostError

    journal = jr.Journal(target, "20260101T000000Z-unit-000002")
    for i in range(3):
        journal.write("step", step=i, id=f"s{i}", kind="check")
    path = Path(journal.path)
    lines = path.read_text().splitlines()
    for bad in ('{"t":"step","st', "not json at all", "[1, 2]", '{"no_type": 1}'):
        path.write_text("\n".join([*lines[:1], bad, *lines[1:]]) + "\n")
        with pytest.raises(HostError) as caught:
            jr.read_run(target, journal.run_id)
        assert f"journal {path} is corrupt at line 2" in str(caught.value)
        assert caught.value.exit_code == 2
    assert jr.read_run(target, "20260101T000000Z-unit-none").records == []  # no journal: no records


def test_writes_are_atomic_owner_only_and_keep_modes(target):
    from orchestrator import journal as jr
    from orchestrator import lock

    project = Path(target.data["project_dir"])
    compose = project / "docker-compose.yml"
    compose.write_text("services: {}\n")
    compose.chmod(0o640)
    target.write_file_atomic(str(compose), b"services: {app: {}}\n")
    assert compose.read_text() == "services: {app: {}}\n" and mode(compose) == 0o640
    target.write_file_atomic(str(project / "new.txt"), b"x", mode=0o600)
    assert mode(project / "new.txt") == 0o600

    journal = jr.Journal(target, "20260101T000000Z-unit-000003")
    backup, digest = journal.backup(b"secret")
    assert mode(Path(backup)) == 0o600 and mode(Path(backup).parent) == 0o700 and Path(backup).name == digest

    lock.acquire(target, "20260101T000000Z-unit-000003", "unit")
    lock_file = project / ".rollout" / "lock"
    assert mode(lock_file) == 0o600 and mode(lock_file.parent) == 0o700
    assert lock.release(target, "20260101T000000Z-unit-000003") and not lock_file.exists()
    assert state_modes(project) == {}
    assert leftovers(project) == []


# -- issue 10.3: exclusive, mode-first temp files; .backup modes; quoted manual commands --------


class UploadSpy:
    """Wraps a connector's real put_file and records, at the moment of each upload, the temp
    file's name, whether it exists and its mode - before any data is in it."""

    def __init__(self, host, stat_path):
        self.put_file = host.put_file
        self.stat_path = stat_path
        self.seen: list[tuple[str, int | None, int | None]] = []
        host.put_file = self

    def __call__(self, data, remote, *args, **kwargs):
        self.seen.append((remote, *self.stat_path(remote)))
        return self.put_file(data, remote, *args, **kwargs)


def local_stat(path: str) -> tuple[int | None, int | None]:
    try:
        st = Path(path).lstat()
    except FileNotFoundError:
        return None, None
    return stat.S_IMODE(st.st_mode), st.st_size


def check_exclusive_mode_first_writes(target, stat_path, project: Path, victim: Path) -> None:
    """write_file_atomic against a planted symlink and files of several modes (local or SSH)."""
    compose = project / "docker-compose.yml"
    compose.write_text("services: {}\n")
    compose.chmod(0o600)
    planted = Path(f"{compose}.rollout-tmp")
    planted.symlink_to(victim)  # an attacker's link at the temp name the tool used to write through
    spy = UploadSpy(target._host, stat_path)

    target.write_file_atomic(str(compose), b"services: {app: {}}\n")
    assert compose.read_bytes() == b"services: {app: {}}\n" and mode(compose) == 0o600
    assert victim.read_text() == "the victim's own content\n", "the planted symlink was written through"
    assert planted.is_symlink() and planted.resolve() == victim.resolve()
    # the first .backup of a 0600 file (SFTP would create it 0644), and a stale 0644 one
    target.write_file_atomic(f"{compose}.backup", b"copy\n", mode_of=str(compose))
    stale = project / "other.yml"
    stale.write_text("x\n")
    stale.chmod(0o640)
    Path(f"{stale}.backup").write_text("old copy\n")
    Path(f"{stale}.backup").chmod(0o644)
    target.write_file_atomic(f"{stale}.backup", b"x\n", mode_of=str(stale))
    target.write_file_atomic(str(project / "journal-copy"), b"j\n", mode=0o600)
    assert mode(Path(f"{compose}.backup")) == 0o600 and mode(Path(f"{stale}.backup")) == 0o640
    assert mode(project / "journal-copy") == 0o600

    final = {str(compose): 0o600, f"{compose}.backup": 0o600, f"{stale}.backup": 0o640,
             str(project / "journal-copy"): 0o600}
    assert len(spy.seen) == len(final)
    for (tmp, tmp_mode, size), (path, want) in zip(spy.seen, final.items()):
        assert Path(tmp).parent == Path(path).parent and Path(tmp).name.startswith(f".{Path(path).name}.rollout-tmp.")
        assert tmp_mode == want and size == 0, f"{tmp}: mode {tmp_mode and oct(tmp_mode)}, {size} bytes before the upload"
    assert leftovers(project) == []


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("the victim's own content\n")
    return path


def test_temp_files_are_exclusive_and_get_their_mode_before_the_data(target, victim):
    check_exclusive_mode_first_writes(target, local_stat, Path(target.data["project_dir"]), victim)
    # a new file without a reference gets the host's default mode (umask), as before
    target.write_file_atomic(str(Path(target.data["project_dir"]) / "new.txt"), b"n")
    umask = os.umask(0)
    os.umask(umask)
    assert mode(Path(target.data["project_dir"]) / "new.txt") == 0o666 & ~umask


def test_manual_undo_commands_are_shell_quoted(tmp_path):
    """A path with a space, `;` and a quote comes out as ONE shell word of each printed command."""
    import shlex

    from orchestrator import journal as jr
    from orchestrator.executor import Executor
    from orchestrator.hosts import Connection
    from orchestrator.inventory import Inventory
    from orchestrator.steps.compose_limits import ComposeLimitsStep
    from orchestrator.steps.file_swap import FileSwapStep
    from orchestrator.steps.recreate import RecreateStep

    project = tmp_path / "my project; rm -rf it's"
    project.mkdir()
    inventory_path = tmp_path / "the inventory; x.py"
    inventory = Inventory(inventory_path, {"app_servers": ["@local"]},
                          {"@local": {"project_dir": str(project), "compose_file": "docker compose.yml",
                                      "compose_project": "rtquoted"}})
    compose = f"{project}/docker compose.yml"
    backup = f"{project}/.rollout/runs/r 1/backups/{'a' * 64}"
    file_undo = {"path": compose, "backup": backup, "sha256": "a" * 64, "sha256_after": "b" * 64}
    with Connection(inventory, ["@local"]) as (target,):
        (cp,) = ComposeLimitsStep.manual_undo(target, file_undo)
        assert shlex.split(cp, comments=True) == ["cp", backup, compose]
        (rm,) = FileSwapStep.manual_undo(target, {"path": compose, "created": True})
        assert shlex.split(rm) == ["rm", "-f", compose]
        (up,) = RecreateStep.manual_undo(target, {"services": ["app"]})
        assert shlex.split(up)[:3] == ["cd", str(project), "&&"]
        run = jr.RunRecord("r 1", [{"t": "start", "plan": "day1"},
                                   {"t": "undo", "step": 0, "id": "limits", "kind": "compose_limits", "undo": file_undo}])
        lines = Executor(inventory, lambda host, msg: None)._emergency_lines(target, run, "day1", "cause")
    assert f"    {cp}" in lines
    assert shlex.split(lines[-1].split(": ", 1)[1]) == ["rollout", "rollback", "day1", "-i", str(inventory_path)]


def ssh_host_data(sshd: dict, base: dict) -> dict:
    return {**base, "ssh_port": sshd["port"], "ssh_user": "root", "ssh_key": sshd["key"],
            "ssh_strict_host_key_checking": "off", "ssh_known_hosts_file": "/dev/null",
            "docker_host": "unix:///var/run/docker.sock"}  # the "remote" engine is the local one


def test_temp_files_over_ssh_are_exclusive_and_mode_first(sshd, tmp_path, victim):
    """The same through pyinfra's SSH connector, whose SFTP uploads create files 0644."""
    from orchestrator.hosts import Connection
    from orchestrator.inventory import Inventory

    project = tmp_path / "project"
    project.mkdir()
    data = ssh_host_data(sshd, {"project_dir": str(project), "compose_file": "docker-compose.yml",
                                "compose_project": f"rt{secrets.token_hex(4)}"})
    inventory = Inventory(tmp_path / "inventory.py", {"app_servers": ["127.0.0.1"]}, {"127.0.0.1": data})
    with Connection(inventory, ["127.0.0.1"]) as (target,):
        assert not target.is_local
        check_exclusive_mode_first_writes(target, local_stat, project, victim)


def test_every_file_day1_creates_over_ssh_is_owner_only(sshd, demo_stack, tmp_path, victim):
    """day1 over SSH with the compose file at 0600: the journal, plan copy, backups, lock and
    FILE.backup are 0600 in 0700 directories, the compose file stays 0600, and a symlink planted
    at the old temp name is left alone (its target unchanged)."""
    import time

    from helpers import rollout_bg

    inv = tmp_path / "ssh_inventory.py"
    inv.write_text(f"app_servers = [(\"127.0.0.1\", {ssh_host_data(sshd, demo_stack.host_data)!r})]\n")
    compose = demo_stack.compose_path
    compose.chmod(0o600)
    original = compose.read_bytes()
    planted = Path(f"{compose}.rollout-tmp")
    planted.symlink_to(victim)
    lock = demo_stack.project_dir / ".rollout" / "lock"

    proc = rollout_bg("apply", "day1", "-i", str(inv), "--yes", "--soak", "3s", "--soak-every", "1s")
    lock_modes = set()
    try:
        while proc.poll() is None:  # the lock exists for the whole run; look at it while it does
            try:
                lock_modes.add(mode(lock))
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(timeout=300) == 0, out
    assert lock_modes == {0o600}, lock_modes
    assert compose.read_bytes() != original and mode(compose) == 0o600
    backup = compose.with_name(compose.name + ".backup")
    assert backup.read_bytes() == original and mode(backup) == 0o600, oct(mode(backup))
    assert state_modes(demo_stack.project_dir) == {}
    run_dir = next((demo_stack.project_dir / ".rollout" / "runs").iterdir())
    assert {p.name for p in run_dir.iterdir()} == {"journal.jsonl", "plan.yaml", "backups"}
    assert victim.read_text() == "the victim's own content\n" and planted.resolve() == victim.resolve()
    assert leftovers(demo_stack.project_dir) == []

    back = rollout("rollback", "day1", "-i", str(inv), "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert compose.read_bytes() == original and mode(compose) == 0o600
    assert state_modes(demo_stack.project_dir) == {} and not lock.exists()
    assert victim.read_text() == "the victim's own content\n" and leftovers(demo_stack.project_dir) == []
