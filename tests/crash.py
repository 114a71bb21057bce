"""Crash-at-every-journal-point harness shared by the per-day crash tests.

A clean run of the plan tells which points the journal records (`after:<type>:<step>`);
then, for each point, `rollout apply` is killed with SIGKILL right after that record
is fsync'd (ROLLOUT_FAULT), `rollout rollback` runs, and the host must equal its
snapshot from before: operator files byte for byte, containers' limits, env and
images, image tags, Redis config, and no lock left behind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from helpers import journal_records, rollout, tree_digest

SERVICES = ("app", "frontend", "redis")
REDIS_KEYS = ("maxmemory-policy", "maxmemory", "tcp-keepalive", "timeout")


def snapshot(stack, extra: Callable[[Any], dict] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        # FILE.backup copies are new files the operator keeps; every original must be identical.
        "files": {k: v for k, v in tree_digest(stack.project_dir).items() if not k.endswith(".backup")},
        "lock": (stack.project_dir / ".rollout" / "lock").exists(),
    }
    for service in SERVICES:
        c = stack.container(service)
        hc = c.attrs["HostConfig"]
        env = sorted(c.attrs["Config"]["Env"])
        state[service] = {"status": c.status, "image": c.attrs["Image"], "memory": hc["Memory"],
                          "nano_cpus": hc["NanoCpus"], "reservation": hc["MemoryReservation"], "env": env}
    state["redis_config"] = {k: stack.redis_config_get(k) for k in REDIS_KEYS}
    import docker

    client = docker.from_env()
    try:
        state["frontend_tag"] = client.images.get(stack.frontend_image).id
    finally:
        client.close()
    if extra:
        state.update(extra(stack))
    return state


def journal_points(project_dir: Path) -> list[str]:
    """Every point the newest run's journal recorded, in order, first occurrence only."""
    points: list[str] = []
    for record in journal_records(project_dir)[-1]:
        point = f"after:{record['t']}:{record.get('step', record.get('index', ''))}"
        if point not in points:
            points.append(point)
    return points


def crash_every_point(stack, plan: str, apply_args: list[str], *, expect_exit: int = 0,
                      extra: Callable[[Any], dict] | None = None) -> tuple[int, int, list[str]]:
    """Run the whole crash matrix; returns (restored, total, failure descriptions)."""
    inv = str(stack.inventory_path)
    before = snapshot(stack, extra)
    clean = rollout("apply", plan, "-i", inv, "--yes", *apply_args)
    assert clean.returncode == expect_exit, clean.stdout + clean.stderr
    points = journal_points(stack.project_dir)
    undo = rollout("rollback", plan, "-i", inv, "--yes")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert snapshot(stack, extra) == before, "a clean apply + rollback did not restore the host"

    failures = []
    for point in points:
        killed = rollout("apply", plan, "-i", inv, "--yes", *apply_args, env={"ROLLOUT_FAULT": point})
        if killed.returncode != -9:
            failures.append(f"{point}: apply was not killed (exit {killed.returncode})")
            continue
        again = rollout("apply", plan, "-i", inv, "--yes", *apply_args)
        if again.returncode not in (2, 4) or "rollout rollback" not in again.stderr:
            failures.append(f"{point}: a new apply did not refuse with advice to roll back: {again.stderr[-300:]}")
        back = rollout("rollback", plan, "-i", inv, "--yes")
        if back.returncode != 0:
            failures.append(f"{point}: rollback exit {back.returncode}: {(back.stdout + back.stderr)[-600:]}")
            continue
        after = snapshot(stack, extra)
        if after != before:
            diff = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
            failures.append(f"{point}: host differs after rollback: {diff}")
    return len(points) - len(failures), len(points), failures
