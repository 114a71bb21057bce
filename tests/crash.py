"""Crash-at-a-journal-point harness shared by the per-day crash tests (issues 6.1, 10.4).

`rollout apply` (or `rollout rollback`) is killed with SIGKILL right after the
journal record of a point is fsync'd (ROLLOUT_FAULT=PHASE:TYPE:WHERE, e.g.
`apply:undo:0`, `rollback:undone:1`, `verify:probe:0`: the naming rule is in
tests/rollout_under_test.py, the test entry that alone carries this hook); a new
apply must refuse and advise a rollback; `rollout rollback` must then leave the
host equal to its snapshot from before: operator files byte for byte,
containers' limits, env and images, the frontend tag, Redis config, and no lock behind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from helpers import journal_records, rollout, tree_digest
from rollout_under_test import point_names

SERVICES = ("app", "frontend", "redis")


def snapshot(stack) -> dict[str, Any]:
    state: dict[str, Any] = {
        # FILE.backup copies are new files the operator keeps; every original must be identical.
        "files": {k: v for k, v in tree_digest(stack.project_dir).items() if not k.endswith(".backup")},
        "lock": (stack.project_dir / ".rollout" / "lock").exists(),
    }
    for service in SERVICES:
        c = stack.container(service)
        hc = c.attrs["HostConfig"]
        state[service] = {"status": c.status, "image": c.attrs["Image"], "memory": hc["Memory"],
                          "nano_cpus": hc["NanoCpus"], "reservation": hc["MemoryReservation"],
                          "env": sorted(c.attrs["Config"]["Env"])}
    state["redis_config"] = stack.redis_config("*")  # every key, in one exec
    client = docker.from_env()
    try:
        state["frontend_tag"] = client.images.get(stack.frontend_image).id
    finally:
        client.close()
    return state


def journal_points(project_dir: Path, *, last_rollback: bool = False) -> list[str]:
    """The points of the newest run's journal, in order, as the process that wrote them named them:
    the whole journal (one `rollout apply`), or from its last `rollback_start` on (the last
    `rollout rollback` over it)."""
    records = journal_records(project_dir)[-1]
    if last_rollback:
        starts = [i for i, r in enumerate(records) if r["t"] == "rollback_start"]
        records = records[starts[-1]:] if starts else []
    return point_names(records)


def differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}


def crash_and_recover(stack, plan: str, point: str, apply_args: list[str], *, check_refusal: bool = False,
                      all_points: list[str] | None = None) -> None:
    """Kill apply at `point`, (optionally) check a new apply refuses, roll back, compare with before.

    Killed after its last record, a run has journaled every point: `all_points` is then
    compared with that journal, which proves the point list complete.
    """
    inv = str(stack.inventory_path)
    before = snapshot(stack)
    killed = rollout("apply", plan, "-i", inv, "--yes", *apply_args, env={"ROLLOUT_FAULT": point})
    assert killed.returncode == -9, f"apply was not killed at {point} (exit {killed.returncode}):\n{killed.stdout}{killed.stderr}"
    if all_points is not None:
        assert journal_points(stack.project_dir) == all_points
    if check_refusal:
        again = rollout("apply", plan, "-i", inv, "--yes", *apply_args)
        assert again.returncode in (2, 4) and "rollout rollback" in again.stderr, again.stderr
    back = rollout("rollback", plan, "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    left = differences(before, snapshot(stack))
    assert left == {}, f"not restored (before, after): {left}"
    stack.dirty = False  # restored: the next test may reuse this stack


def rollback_crash_and_recover(stack, plan: str, point: str, apply_args: list[str], *,
                               all_points: list[str] | None = None) -> None:
    """Apply `plan` (it must succeed), kill `rollout rollback` itself at `point`, then a second
    `rollout rollback` must finish the job: the host is as before the apply, no lock behind.

    Killed after its last record, the first rollback journaled every point: `all_points` is then
    compared with the records it wrote, which proves the point list complete.
    """
    inv = str(stack.inventory_path)
    before = snapshot(stack)
    applied = rollout("apply", plan, "-i", inv, "--yes", *apply_args)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    killed = rollout("rollback", plan, "-i", inv, "--yes", env={"ROLLOUT_FAULT": point})
    assert killed.returncode == -9, f"rollback was not killed at {point} (exit {killed.returncode}):\n{killed.stdout}{killed.stderr}"
    assert (stack.project_dir / ".rollout" / "lock").exists()  # the dead rollback's lock is left behind
    if all_points is not None:
        assert journal_points(stack.project_dir, last_rollback=True) == all_points
    back = rollout("rollback", plan, "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    left = differences(before, snapshot(stack))
    assert left == {}, f"not restored (before, after): {left}"
    stack.dirty = False  # restored: the next test may reuse this stack
