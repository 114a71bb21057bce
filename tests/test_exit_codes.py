"""Issue 10.1: the exit-code contract on every path.

Exit 1 only after a verified rollback; an unexpected error before any change is 5
(traceback only with --debug); Ctrl-C before any change is 130; Ctrl-C or a journal
that can no longer be written after a change leads to the rollback (1 or 3). No
command ends in a Python traceback.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from crash import differences, snapshot
from helpers import REPO, journal_records, rollout, rollout_bg

DAY1 = (REPO / "plans" / "day1.yaml").read_text()


def inventory(path: Path, project_dir: Path, **data) -> Path:
    host_data = {"project_dir": str(project_dir), "compose_file": "docker-compose.yml", "compose_project": "rtx",
                 "app_port": 1, **data}
    path.write_text(f"app_servers = [(\"127.0.0.1\", {host_data!r})]\n")
    return path


# -- 5: internal error, nothing changed -------------------------------------------------
@pytest.mark.parametrize("command", [["status"], ["history"], ["diff", "day1"], ["apply", "day1", "--yes"]])
def test_an_unexpected_error_exits_5_with_no_traceback_unless_debug(command, tmp_path):
    # pyinfra refuses the connector data before connecting (ConnectorDataTypeError): not an
    # error rollout knows, so it is an internal error, and nothing was changed.
    inv = inventory(tmp_path / "inv.py", tmp_path / "project", ssh_port="notaport")
    result = rollout(*command, "-i", str(inv))
    assert result.returncode == 5, result.stdout + result.stderr
    assert "internal error: ConnectorDataTypeError" in result.stderr and "nothing changed" in result.stderr
    assert "rollout --debug" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    debug = rollout("--debug", *command, "-i", str(inv))
    assert debug.returncode == 5
    assert "Traceback (most recent call last)" in debug.stderr and "ConnectorDataTypeError" in debug.stderr
    assert not (tmp_path / "project").exists()


def test_a_refused_connection_exits_5_with_no_traceback(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inv = inventory(tmp_path / "inv.py", tmp_path / "project", ssh_port=port)
    result = rollout("status", "-i", str(inv))
    assert result.returncode == 5, result.stdout + result.stderr
    assert "internal error" in result.stderr and "Traceback" not in result.stdout + result.stderr


# -- 130: Ctrl-C before anything changed -------------------------------------------------
class SilentServer:
    """Accepts TCP connections and never answers: an SSH host that hangs before its banner."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def interrupt(proc: subprocess.Popen, ready: threading.Event | None = None, delay: float = 0.0) -> str:
    if ready is not None:
        assert ready.wait(60), "the command never reached the host"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)  # a hang guard: the rollback recreates a service
    return out


@pytest.mark.parametrize("command", [["status"], ["history"], ["diff", "day1"], ["diff", "day1", "--json"]])
def test_ctrl_c_while_a_read_only_command_waits_for_its_host_exits_130(command, tmp_path):
    server = SilentServer()
    try:
        inv = inventory(tmp_path / "inv.py", tmp_path / "project", ssh_port=server.port)
        proc = rollout_bg(*command, "-i", str(inv))
        out = interrupt(proc, server.accepted, delay=0.5)
    finally:
        server.close()
    assert proc.returncode == 130, out
    assert "interrupted (Ctrl-C); nothing changed" in out
    assert "EMERGENCY" not in out and "Traceback" not in out


def test_ctrl_c_while_validate_reads_a_plan_exits_130(tmp_path):
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)  # a plan that never arrives: validate blocks reading it
    proc = rollout_bg("validate", str(fifo))
    deadline = time.monotonic() + 120
    while True:  # a non-blocking open for writing succeeds once validate has the plan open for reading
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "validate never opened the plan"
            time.sleep(0.05)
    try:
        out = interrupt(proc, delay=0.5)  # validate now waits for the plan's bytes
    finally:
        os.close(writer)
    assert proc.returncode == 130, out
    assert "interrupted (Ctrl-C); nothing changed" in out and "Traceback" not in out


def wait_for_record(project_dir: Path, predicate, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"rollout ended early ({proc.returncode}):\n{proc.stdout.read()}")
        runs = journal_records(project_dir) if (project_dir / ".rollout" / "runs").exists() else []
        if runs and any(predicate(r) for r in runs[-1]):
            return
        time.sleep(0.1)
    raise TimeoutError("journal record not seen")


# -- Ctrl-C after the first change: the rollback ------------------------------------------
def test_ctrl_c_during_the_soak_rolls_back_and_exits_1(demo_stack):
    before = snapshot(demo_stack)
    proc = rollout_bg("apply", "day1", "-i", str(demo_stack.inventory_path), "--yes", "--soak", "10m", "--soak-every", "1s")
    try:
        wait_for_record(demo_stack.project_dir, lambda r: r["t"] == "step" and r["step"] == 2, proc)  # the soak started
        out = interrupt(proc, delay=1.0)
    finally:
        proc.kill()
    assert proc.returncode == 1, out
    assert "interrupted (Ctrl-C) while applying" in out and "rolled back and verified (2 step(s) undone)" in out
    assert "Traceback" not in out
    assert differences(before, snapshot(demo_stack)) == {}
    records = journal_records(demo_stack.project_dir)[-1]
    assert [r["outcome"] for r in records if r["t"] == "end"] == ["rolled_back"]
    assert not (demo_stack.project_dir / ".rollout" / "lock").exists()


# -- the journal unwritable after the first change ------------------------------------------
def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no page left."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_disk_full_after_the_first_change_rolls_back_from_memory(tmpfs_stack, tmp_path):
    stack = tmpfs_stack
    inv = str(stack.inventory_path)
    before = snapshot(stack)
    # A check after the soak fails with a long message: its `failed` record cannot fit in what is
    # left of the journal's last page once the disk is full.
    pad = "x" * 3900
    plan = tmp_path / "full.yaml"
    plan.write_text(DAY1.replace(
        "validate:\n",
        "  - id: late-check\n    check:\n      http:\n"
        "        url: \"http://127.0.0.1:{{ host.data.app_port }}/api/health\"\n"
        f"        headers: {{X-Pad: {{equals: {pad}}}}}\n"
        "        retry: {consecutive: 1}\nvalidate:\n", 1))
    proc = rollout_bg("apply", str(plan), "-i", inv, "--yes", "--soak", "4s", "--soak-every", "1s")
    try:
        wait_for_record(stack.project_dir, lambda r: r["t"] == "step" and r["step"] == 2, proc)  # the soak started
        filler = fill(stack.project_dir)
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    # Restoring the compose file needs a page too: the rollback stops there, and says exactly what is left,
    # from what the process holds (the journal on the host has none of it).
    assert proc.returncode == 3, out
    assert "Traceback" not in out and "nothing changed" not in out
    assert "EMERGENCY" in out and "No space left on device" in out
    assert "- limits (compose_limits)" in out and "- recreate-app (recreate)" in out and "manual commands:" in out
    assert "JOURNAL NOT UPDATED" in out
    filler.unlink()
    runs = sorted((stack.project_dir / ".rollout" / "runs").iterdir())
    text = (runs[-1] / "journal.jsonl").read_text()
    assert '"t":"undo"' in text and '"t":"end"' not in text  # the changes are journaled, what followed is not
    # With space again, the journal is enough to finish.
    back = rollout("rollback", str(plan), "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert differences(before, snapshot(stack)) == {}


def test_journal_directory_gone_after_the_first_change_rolls_back_from_memory(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    before = snapshot(demo_stack)
    state = demo_stack.project_dir / ".rollout"
    plan = tmp_path / "gone.yaml"
    plan.write_text(DAY1.replace(
        "validate:\n",
        "  - id: late-check\n    check:\n      http:\n"
        "        url: \"http://127.0.0.1:{{ host.data.app_port }}/api/health\"\n"
        "        status: 418\n        retry: {consecutive: 1}\nvalidate:\n", 1))
    proc = rollout_bg("apply", str(plan), "-i", inv, "--yes", "--soak", "4s", "--soak-every", "1s")
    try:
        wait_for_record(demo_stack.project_dir, lambda r: r["t"] == "step" and r["step"] == 2, proc)
        # The state directory is moved away and a file takes its place: no journal write can succeed.
        state.rename(tmp_path / "state-moved")
        state.write_text("not a directory\n")
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    # The compose file comes back from FILE.backup next to it, app is recreated, the probes pass.
    assert proc.returncode == 1, out
    assert "rolled back and verified (2 step(s) undone)" in out
    assert "JOURNAL NOT UPDATED" in out and "rollout rollback day1" in out
    assert "Traceback" not in out
    assert differences(before, snapshot(demo_stack)) == {}  # .rollout (now a file) is not compared
