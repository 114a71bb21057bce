"""Per-host lock: a file created with O_EXCL (shell noclobber) in the state dir."""
from __future__ import annotations

import json
import os
import shlex
import socket
from typing import Any

from orchestrator.errors import LockHeld
from orchestrator.hosts import Target
from orchestrator.journal import now, state_dir, who


def lock_path(target: Target) -> str:
    return f"{state_dir(target)}/lock"


def read_lock(target: Target) -> dict[str, Any] | None:
    raw = target.read_file(lock_path(target))
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {"holder": "unknown (unreadable lock file)", "raw": raw[:200].decode("utf-8", "replace")}


def is_stale(info: dict[str, Any]) -> bool:
    """The holder ran on this controller and its process is gone."""
    if info.get("controller") != socket.gethostname() or not info.get("pid"):
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe(info: dict[str, Any]) -> str:
    stale = (f" — STALE: its process is gone; `rollout rollback {info.get('plan', 'PLAN')}` undoes that run and "
             "takes the lock over, or `rollout unlock` releases it") if is_stale(info) else ""
    return (
        f"held by {info.get('holder', '?')} (pid {info.get('pid', '?')} on {info.get('controller', '?')}) "
        f"since {info.get('since', '?')}, run {info.get('run_id', '?')} of plan {info.get('plan', '?')}{stale}"
    )


def acquire(target: Target, run_id: str, plan: str) -> None:
    info = {
        "holder": who(),
        "controller": socket.gethostname(),
        "pid": os.getpid(),
        "since": now(),
        "run_id": run_id,
        "plan": plan,
    }
    path = lock_path(target)
    # noclobber makes the shell open with O_EXCL: exactly one of two racing runs wins.
    cmd = (
        f"umask 077 && mkdir -p {shlex.quote(state_dir(target))} && "
        f"( set -C; printf '%s\\n' {shlex.quote(json.dumps(info))} > {shlex.quote(path)} ) 2>/dev/null && sync {shlex.quote(path)}"
    )
    if not target.run(cmd).ok:
        held = read_lock(target) or {}
        raise LockHeld(f"{target.name}: another run holds the lock: {describe(held)}")


def release(target: Target, run_id: str | None = None) -> bool:
    """Remove the lock (only ours, when run_id is given). True if one was removed."""
    info = read_lock(target)
    if info is None or (run_id and info.get("run_id") != run_id):
        return False
    return target.run(["rm", "-f", lock_path(target)]).ok
