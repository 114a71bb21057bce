"""Faults (issue 6.2): each ends in a verified rollback or an exact EMERGENCY, never in silence."""
from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from pathlib import Path

from crash import differences, snapshot
from helpers import REPO, journal_records, rollout, rollout_bg

FAST = ["--soak", "2s", "--soak-every", "1s"]
DAY1 = (REPO / "plans" / "day1.yaml").read_text()


class SocketProxy:
    """A unix-socket proxy to the Docker engine that can be cut off, to make the engine vanish mid-run."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path, self.target = str(path), target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(64)
        self.conns: list[socket.socket] = []
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.alive:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """The engine is gone: refuse new connections and drop the open ones."""
        self.alive = False
        self.server.close()
        os.unlink(self.path)
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


def wait_for_record(project_dir: Path, predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = journal_records(project_dir) if (project_dir / ".rollout" / "runs").exists() else []
        if runs and any(predicate(r) for r in runs[-1]):
            return
        time.sleep(0.1)
    raise TimeoutError("journal record not seen")


def test_engine_unreachable_at_start_changes_nothing(demo_stack):
    before = snapshot(demo_stack)
    result = rollout("apply", "day1", "-i", str(demo_stack.inventory_path), "--yes", *FAST,
                     env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the Docker engine is unreachable" in result.stderr
    assert differences(before, snapshot(demo_stack)) == {}
    assert not (demo_stack.project_dir / ".rollout" / "runs").exists()


def test_engine_lost_mid_run_is_an_emergency_then_rollback_finishes(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    before = snapshot(demo_stack)
    proxy = SocketProxy(tmp_path / "docker.sock")
    run = rollout_bg("apply", "day1", "-i", inv, "--yes", "--soak", "30s", "--soak-every", "1s",
                     env={"DOCKER_HOST": f"unix://{proxy.path}"})
    try:
        # The engine disappears during the soak, after app was recreated with the new limits.
        wait_for_record(demo_stack.project_dir, lambda r: r["t"] == "step" and r["step"] == 3)
        proxy.cut()
        out, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 3, out
    assert "EMERGENCY" in out and "recreate-app (recreate)" in out and "docker-compose" in out
    assert "once the cause is fixed: rollout rollback day1" in out
    # The engine is back: the journal is enough to finish.
    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert differences(before, snapshot(demo_stack)) == {}


class HangingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 — http.server's naming
        time.sleep(30)

    def log_message(self, *args):
        pass


def test_hanging_probe_times_out_and_rolls_back(demo_stack, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HangingHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plan = tmp_path / "hang.yaml"
    plan.write_text(DAY1.replace(
        "  - id: soak\n",
        f"  - id: slow-endpoint\n    check:\n      http:\n        url: http://127.0.0.1:{server.server_port}/\n"
        "        timeout: 1s\n        retry: {consecutive: 2, interval: 500ms}\n  - id: soak\n"))
    original = demo_stack.compose_path.read_bytes()
    # a hang is caught by the subprocess timeout (and pytest-timeout), not by a wall-time assert
    result = rollout("apply", str(plan), "-i", str(demo_stack.inventory_path), "--yes", *FAST, timeout=240)
    server.shutdown()
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "ReadTimeout" in out or "timed out" in out
    assert "rolled back and verified" in out
    assert demo_stack.compose_path.read_bytes() == original


def test_compose_failing_on_recreate_rolls_back(demo_stack, tmp_path):
    # The engine refuses more CPUs than the machine has: `compose up` fails at the recreate.
    plan = tmp_path / "cpus.yaml"
    plan.write_text(DAY1.replace('cpus: "0.75"', 'cpus: "512"'))
    before = snapshot(demo_stack)
    result = rollout("apply", str(plan), "-i", str(demo_stack.inventory_path), "--yes", *FAST)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "recreating app failed" in out and "CPUs" in out
    assert "rolled back and verified" in out
    after = snapshot(demo_stack)
    assert after["files"] == before["files"]
    assert (after["app"]["memory"], after["app"]["nano_cpus"]) == (before["app"]["memory"], before["app"]["nano_cpus"])


def test_no_space_for_the_backup_fails_before_the_file_is_touched(tmpfs_stack):
    stack = tmpfs_stack
    original = stack.compose_path.read_bytes()
    # Leave 3 pages: the lock, the journal and the run's plan copy fit; the backup does not.
    page = 4096
    stat = os.statvfs(stack.project_dir)
    free = stat.f_bavail * stat.f_frsize
    filler = stack.project_dir / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - 3 * page))
    result = rollout("apply", "day1", "-i", str(stack.inventory_path), "--yes", *FAST)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "No space left on device" in out and "/backups/" in out  # it was the backup that did not fit
    assert stack.compose_path.read_bytes() == original
    assert not list(stack.project_dir.rglob("*.rollout-tmp*"))
    records = journal_records(stack.project_dir)
    assert not any(r["t"] == "undo" for run in records for r in run)  # nothing was mutated, nothing to undo
    filler.unlink()
