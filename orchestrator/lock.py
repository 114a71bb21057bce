"""Per-host lock: `<project_dir>/.rollout/lock`, a JSON file that names its holder.

Every operation is atomic on the host:
- acquire: the record is written in full to a unique temp file, then hard-linked to
  `lock` (link(2) fails if `lock` exists: exactly one of two racing runs wins, and a
  lock file is never seen half written);
- take over a stale lock: rename it aside under a unique name, and go on only if the
  file moved aside is byte for byte the stale one read before (else put it back);
- release: rename it aside, delete it if it is ours, put it back otherwise.

Whether a holder is alive is decided ON THE HOST, through the target, so it works
for SSH hosts and from another controller: the lock records the host's boot id and
the pid and start time (field 22 of /proc/PID/stat) of the process on the host that
lives exactly as long as the holder's connection to it — the `rollout` process
itself on `@local`, the sshd session of its connection on an SSH host. A recycled
pid (start time differs) or a reboot (boot id differs) means the holder is gone.

An I/O error while locking (disk full, read-only, no permission) is reported as
that error (HostError, exit 2), never as "another run holds the lock" (exit 4).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import socket
from typing import Any

from orchestrator.errors import HostError, LockHeld
from orchestrator.hosts import Target
from orchestrator.journal import now, state_dir, who

BOOT_ID = "/proc/sys/kernel/random/boot_id"

# The process the command's shell runs under, skipping the shells pyinfra wraps commands
# in: the `rollout` process (local) or the sshd session of the connection (SSH). Prints
# "BOOT_ID PID STARTTIME". /proc/PID/stat's comm (field 2) may hold spaces: cut after ") ".
_HOLDER_SCRIPT = r"""
p=$$
while :; do
  s=$(cat /proc/$p/stat) || exit 1
  s=${s##*) }
  set -- $s
  case $(cat /proc/$p/comm) in
    sh|bash|dash|zsh|ash|ksh|mksh|busybox|sudo|su|env|timeout) p=$2 ;;
    *) break ;;
  esac
done
printf '%s %s %s\n' "$(cat %(boot_id)s)" "$p" "${20}"
""".replace("%(boot_id)s", BOOT_ID)

# What the lock scripts print (and exit 1) when the lock is held by someone else.
_HELD = "rollout-lock:held"
_EXIT_HELD = f"{{ echo {_HELD}; exit 1; }}"


def _move_aside(qp: str, qa: str) -> str:
    """Shell: rename the lock aside; a lock that is gone meanwhile (ENOENT) is 'held': someone else
    acted (and may hold a new one already). Any other failure (read-only, permission) is itself."""
    return (f"err=$(LC_ALL=C mv {qp} {qa} 2>&1) || {{ "
            f"case $err in *'No such file or directory'*) {_EXIT_HELD};; esac; echo \"$err\" >&2; exit 1; }}")


def lock_path(target: Target) -> str:
    return f"{state_dir(target)}/lock"


def read_lock(target: Target) -> dict[str, Any] | None:
    """The lock's record, or None when the host is not locked. `_sha256` is the file's checksum."""
    raw = target.read_file(lock_path(target))
    if raw is None:
        return None
    try:
        info = json.loads(raw)
        if not isinstance(info, dict):
            raise ValueError("not an object")
    except ValueError:
        info = {"holder": "unknown (unreadable lock file)", "raw": raw[:200].decode("utf-8", "replace")}
    info["_sha256"] = hashlib.sha256(raw).hexdigest()
    return info


def _holder_on_host(target: Target) -> tuple[str, int, str]:
    """(boot id, pid, start time) of this run's process on the host."""
    result = target.run(_HOLDER_SCRIPT)
    fields = result.stdout.split()
    if not result.ok or len(fields) != 3 or not fields[1].isdigit():
        raise HostError("cannot identify this run's process on the host through /proc: "
                        f"{result.output.strip() or 'unexpected answer'}", host=target.name)
    return fields[0], int(fields[1]), fields[2]


def is_stale(target: Target, info: dict[str, Any]) -> bool:
    """The holder is gone: the host rebooted since, or its process there is gone (or is another
    process that reuses its pid). Read on the host. A lock that does not say is not stale."""
    boot_id, pid, start = info.get("boot_id"), info.get("host_pid"), info.get("host_pid_start")
    if not boot_id or not isinstance(pid, int) or not start:
        return False
    script = (f"b=$(cat {BOOT_ID}) && test \"$b\" = {shlex.quote(str(boot_id))} || {{ echo rebooted; exit 0; }}; "
              f"s=$(cat /proc/{pid}/stat 2>/dev/null) || {{ echo gone; exit 0; }}; s=${{s##*) }}; set -- $s; "
              f"test \"${{20}}\" = {shlex.quote(str(start))} && echo alive || echo recycled")
    answer = target.run(script).stdout.strip()
    return answer in ("rebooted", "gone", "recycled")


def describe(target: Target, info: dict[str, Any], stale: bool | None = None) -> str:
    if stale is None:
        stale = is_stale(target, info)
    note = (f" — STALE: its process is gone; `rollout rollback {info.get('plan', 'PLAN')}` undoes that run and "
            "takes the lock over, or `rollout unlock` releases it") if stale else ""
    return (
        f"held by {info.get('holder', '?')} (pid {info.get('pid', '?')} on {info.get('controller', '?')}) "
        f"since {info.get('since', '?')}, run {info.get('run_id', '?')} of plan {info.get('plan', '?')}{note}"
    )


def _held(target: Target) -> LockHeld:
    held = read_lock(target) or {}
    return LockHeld(f"another run holds the lock: {describe(target, held)}", host=target.name)


def acquire(target: Target, run_id: str, plan: str, *, claim: str = "") -> None:
    """Take the lock. `claim` (shell) runs in the same command right before the link, after our
    record is on disk: a takeover clears the stale lock there, leaving no window between the
    stale lock going and ours arriving in which a newcomer could take the lock instead."""
    boot_id, host_pid, host_pid_start = _holder_on_host(target)
    info = {
        "holder": who(),
        "controller": socket.gethostname(),
        "pid": os.getpid(),
        "since": now(),
        "run_id": run_id,
        "plan": plan,
        "boot_id": boot_id,
        "host_pid": host_pid,
        "host_pid_start": host_pid_start,
    }
    path = lock_path(target)
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    qp, qt = shlex.quote(path), shlex.quote(tmp)
    # The record is complete and on disk before link(2) makes it the lock in one step.
    cmd = (
        f"umask 077 && mkdir -p {shlex.quote(state_dir(target))} && printf '%s\\n' {shlex.quote(json.dumps(info))} | cat > {qt} "
        f"&& sync {qt} || {{ rc=$?; rm -f {qt}; exit $rc; }}; "
        + (f"( {claim} ) || {{ rc=$?; rm -f {qt}; exit $rc; }}; " if claim else "")
        + f"ln {qt} {qp} 2>/dev/null; rc=$?; "
        f"if test $rc -ne 0 && test -e {qp}; then rm -f {qt}; echo {_HELD}; exit 1; fi; "
        f"if test $rc -ne 0; then ln {qt} {qp}; rc=$?; fi; rm -f {qt}; "
        f"test $rc -eq 0 && sync {shlex.quote(state_dir(target))}"
    )
    result = target.run(cmd)
    if result.ok:
        return
    if _HELD in result.stdout:
        raise _held(target)
    raise HostError(f"cannot take the lock {path}: {result.output.strip() or 'unknown error'}", host=target.name)


def take_over(target: Target, stale: dict[str, Any], run_id: str, plan: str) -> None:
    """Replace a stale lock (as read: `stale`) with ours, atomically: of two runs taking
    over the same stale lock, exactly one succeeds; the other gets LockHeld."""
    path = lock_path(target)
    aside = f"{path}.takeover.{secrets.token_hex(6)}"
    qp, qa = shlex.quote(path), shlex.quote(aside)
    claim = (
        f"{_move_aside(qp, qa)}; "
        f"if test \"$(sha256sum < {qa} | cut -d' ' -f1)\" = {shlex.quote(str(stale.get('_sha256')))}; "
        f"then rm -f {qa}; else ln {qa} {qp} 2>/dev/null; rm -f {qa}; {_EXIT_HELD}; fi"
    )
    acquire(target, run_id, plan, claim=claim)


def release(target: Target, run_id: str | None = None) -> bool:
    """Remove the lock (only ours, when run_id is given). True if one was removed.

    The lock is renamed aside first, so what is deleted is exactly what was checked."""
    path = lock_path(target)
    aside = f"{path}.release.{secrets.token_hex(6)}"
    qp, qa = shlex.quote(path), shlex.quote(aside)
    mine = ""
    if run_id:
        # not ours (taken over meanwhile): put it back; link(2) never clobbers a newer lock
        mine = (f"grep -qF {shlex.quote(json.dumps(run_id))} {qa} || "
                f"{{ ln {qa} {qp} 2>/dev/null; rm -f {qa}; {_EXIT_HELD}; }}; ")
    cmd = (f"{_move_aside(qp, qa)}; {mine}"
           f"rm -f {qa} && sync {shlex.quote(state_dir(target))}")
    result = target.run(cmd)
    if result.ok:
        return True
    if _HELD in result.stdout:
        return False
    raise HostError(f"cannot release the lock {path}: {result.output.strip()}", host=target.name)

