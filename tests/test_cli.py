"""The command line's contract: help that teaches, usage errors exit 2, lock handling."""
from __future__ import annotations

import json

import pytest

from helpers import rollout

COMMANDS = ["validate", "diff", "apply", "rollback", "status", "history", "watch", "unlock", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = rollout(command, "--help")
    assert result.returncode == 0
    assert "Usage: python -m orchestrator " + command in result.stdout or "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) > 4


def test_apply_help_lists_the_exit_codes():
    out = rollout("apply", "--help").stdout
    for line in ("0  done", "1  a validation probe failed", "2  bad input", "3  EMERGENCY", "4  another run holds"):
        assert line in out


@pytest.mark.parametrize("args, message", [
    (["rollback"], "name a PLAN"),
    (["apply", "day1", "--soak", "soon"], "is not a duration"),
    (["apply", "day1", "--soak", "0s"], "greater than zero"),
    (["apply", "nosuchplan"], "no plan named 'nosuchplan'"),
    (["diff", "day1", "-i", "/nonexistent/inventory.py"], "inventory file not found"),
    (["apply", "/tmp/does-not-exist.plan.json"], "not a saved plan"),
])
def test_usage_errors_exit_2_with_a_clear_message(args, message):
    result = rollout(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_unlock_releases_a_stale_lock_only_after_confirmation(demo_stack):
    inv = str(demo_stack.inventory_path)
    killed = rollout("apply", "day1", "-i", inv, "--yes", "--soak", "2s", env={"ROLLOUT_FAULT": "apply:start:"})
    assert killed.returncode == -9
    lock = demo_stack.project_dir / ".rollout" / "lock"
    holder = json.loads(lock.read_text())
    assert holder["plan"] == "day1" and holder["pid"] and holder["since"]
    assert oct(lock.stat().st_mode & 0o777) == "0o600"

    refused = rollout("unlock", "-i", inv)  # no terminal, no --yes
    assert refused.returncode == 2 and "STALE" in refused.stdout and lock.exists()
    released = rollout("unlock", "-i", inv, "--yes")
    assert released.returncode == 0 and "lock released" in released.stdout and not lock.exists()
    # The crashed run changed nothing (it died right after its start record): nothing to undo.
    again = rollout("apply", "day1", "-i", inv, "--dry-run")
    assert again.returncode == 0


def test_watch_prints_live_stats_against_the_plans_thresholds(demo_stack):
    result = rollout("watch", "app", "-p", "day1", "-i", str(demo_stack.inventory_path), "--count", "2", "--every", "1s")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if " app: memory " in line]
    assert len(lines) == 2 and all(line.endswith("PASS") for line in lines)
    assert "/2048 MiB" in lines[0]  # measured against the container's real 2G limit


def test_demo_up_again_changes_nothing_and_status_lists_the_stack(demo_stack):
    inv = str(demo_stack.inventory_path)
    ids = {s: demo_stack.container(s).id for s in ("app", "frontend", "redis")}
    up = rollout("demo", "up", "-i", inv)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"http://127.0.0.1:{demo_stack.app_port}/api/health" in up.stdout
    assert {s: demo_stack.container(s).id for s in ids} == ids
    status = rollout("demo", "status", "-i", inv)
    assert status.returncode == 0
    for service in ids:
        assert f"service={service}" in status.stdout
