"""Write-ahead, append-only, fsync'd run journal kept on the host.

Layout under `<project_dir>/.rollout/` (owner-only permissions):

    lock                          who holds the host (JSON), see lock.py
    runs/<run_id>/journal.jsonl   one JSON record a line, fsync'd after each
    runs/<run_id>/backups/<sha>   checksummed copies the undo records point to

A record is written *before* the mutation it describes, so any controller
with the inventory can undo a run after a crash from these files alone. A torn
last line (crash mid-write) is ignored; earlier records are kept. The next writer
ends the torn line and appends a `torn` record before its own, so a record is
never glued onto a torn one; any other unreadable line is corruption, reported
with its file and line (exit 2) rather than guessed around.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import shlex
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator import known_secrets
from orchestrator.errors import HostError
from orchestrator.hosts import Target

STATE_DIR = ".rollout"

# Run outcomes, as recorded in the `end` record.
SUCCEEDED = "succeeded"
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"
STOPPED = "stopped"  # on_failure: stop, left for a manual rollback
IN_EFFECT = "in_effect"  # every step diffed empty: nothing was changed, nothing to undo
INTERRUPTED = "interrupted"  # no end record: the process died

# Record that follows a line torn by a crash mid-write, written by the next writer.
TORN = "torn"

# Called as observer(journal, record) after each record is durably written. Empty in
# production; an extension point for embedders and tests (the crash tests install one from
# their own entry module, tests/rollout_under_test.py, to stop a run at an exact record).
observers: list[Callable[["Journal", dict[str, Any]], None]] = []


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_run_id(plan: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{plan}-{secrets.token_hex(3)}"


def state_dir(target: Target) -> str:
    return target.path(STATE_DIR)


def run_dir(target: Target, run_id: str) -> str:
    return f"{state_dir(target)}/runs/{run_id}"


class Journal:
    """Appends records for one run on one host."""

    def __init__(self, target: Target, run_id: str):
        self.target = target
        self.run_id = run_id
        self.dir = run_dir(target, run_id)
        self.path = f"{self.dir}/journal.jsonl"
        # Every record this process wrote (or, through `note`, meant to write): a rollback runs
        # from these when the journal on the host becomes unwritable mid-run (disk full, removed).
        self.records: list[dict[str, Any]] = []
        self.write_error: str | None = None

    def write(self, type_: str, **fields: Any) -> dict[str, Any]:
        record = {"t": type_, "at": now(), **known_secrets.scrub_record(fields)}
        torn = json.dumps({"t": TORN, "at": now()}, sort_keys=True, separators=(",", ":"))
        self.target.append_line(self.path, json.dumps(record, sort_keys=True, separators=(",", ":")), after_torn=torn)
        self.records.append(record)
        for observe in observers:
            observe(self, record)
        return record

    def next_undo_number(self) -> int:
        """The number of this run's next undo record (1, 2, …): what `undone` records point at."""
        return 1 + sum(1 for r in self.records if r["t"] == "undo")

    def note(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Write a record if the host lets us; keep it in memory either way.

        For the rollback path: a journal that cannot be written must not stop the undo.
        The first error is kept in `write_error` for the report."""
        try:
            return self.write(type_, **fields)
        except Exception as exc:  # noqa: BLE001 — HostError, connector errors: the undo goes on
            record = {"t": type_, "at": now(), **fields}
            self.records.append(record)
            self.write_error = self.write_error or str(exc)
            return record

    def run(self) -> RunRecord:
        """The run as this process knows it (its records in memory)."""
        return RunRecord(self.run_id, list(self.records))

    def backup(self, data: bytes) -> tuple[str, str]:
        """Store a checksummed copy in the run's backups; return (path, sha256)."""
        digest = hashlib.sha256(data).hexdigest()
        path = f"{self.dir}/backups/{digest}"
        self.target.check(f"umask 077 && mkdir -p {shlex.quote(self.dir + '/backups')}", "creating the backup directory")
        self.target.write_file_atomic(path, data, mode=0o600)
        return path, digest


@dataclass
class RunRecord:
    """What the journal of one run says, folded."""

    run_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    torn: bool = False

    @property
    def start(self) -> dict[str, Any]:
        return next((r for r in self.records if r["t"] == "start"), {})

    @property
    def outcome(self) -> str:
        """The last `end` record's outcome; INTERRUPTED when there is none, or when a rollback
        started after it and never ended (killed after its undos, before its verification)."""
        marks = [r for r in self.records if r["t"] in ("end", "rollback_start")]
        return marks[-1]["outcome"] if marks and marks[-1]["t"] == "end" else INTERRUPTED

    @property
    def pending_undo(self) -> list[dict[str, Any]]:
        """Undo records (in apply order) that have not been undone yet."""
        undone = {undo_key(r) for r in self.records if r["t"] == "undone"}
        return [r for r in self.records if r["t"] == "undo" and undo_key(r) not in undone]


def undo_key(record: dict[str, Any]) -> Any:
    """Which undo record an `undo` or `undone` record is about: its number `n` in the run
    (journals written before steps could journal several records have only the step index)."""
    return record["n"] if "n" in record else ("step", record["step"])


def read_run(target: Target, run_id: str) -> RunRecord:
    """The run's records. A line torn by a crash mid-write (the last line, or one the next
    writer marked with a `torn` record) is skipped; any other unreadable line is corruption,
    reported as a HostError naming the file and line (earlier records are not guessed at)."""
    path = f"{run_dir(target, run_id)}/journal.jsonl"
    raw = target.read_file(path) or b""
    run = RunRecord(run_id)
    lines = [(n, line) for n, line in enumerate(raw.decode("utf-8", "replace").split("\n"), 1) if line.strip()]
    for i, (n, line) in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "t" not in record:
                raise ValueError("not a journal record")
        except ValueError as exc:  # JSONDecodeError is a ValueError
            if i == len(lines) - 1 or _is_torn_mark(lines[i + 1][1]):
                run.torn = True  # the crash happened mid-write
                continue
            raise HostError(
                f"{target.name}: journal {path} is corrupt at line {n} ({exc}): it is not the last line, so not a "
                "write torn by a crash. Nothing was changed; inspect the file (its undo records say what the run "
                "changed) and repair or move it aside"
            ) from None
        if record["t"] != TORN:
            run.records.append(record)
    return run


def _is_torn_mark(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("t") == TORN


def list_runs(target: Target, plan: str | None = None) -> list[str]:
    """Run ids on the host, oldest first (ids sort by time)."""
    runs = sorted(target.list_dir(f"{state_dir(target)}/runs"))
    if plan:
        runs = [r for r in runs if r.split("-", 1)[1].rsplit("-", 1)[0] == plan]
    return runs


def history_rows(target: Target, plan: str | None = None) -> list[dict[str, Any]]:
    """One row per run on the host (oldest first): what `rollout history` shows."""
    rows = []
    for run_id in list_runs(target, plan):
        run = read_run(target, run_id)
        start = run.start
        ends = [r for r in run.records if r["t"] == "end"]
        rows.append({
            "host": target.name, "run": run_id, "plan": start.get("plan"), "version": start.get("version"),
            "sha256": (start.get("sha256") or "")[:12], "by": start.get("user"), "started": start.get("at"),
            "ended": ends[-1]["at"] if ends else None, "outcome": run.outcome,
            "still_applied": len(run.pending_undo),
            "reason": next((r.get("reason") for r in run.records if r["t"] == "failed"), None),
        })
    return rows
