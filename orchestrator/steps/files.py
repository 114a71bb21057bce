"""Undo of steps that replace a project file: restore it byte for byte from its backup.

Shared by the file-writing step kinds (compose_limits, file_swap); not a step kind itself.
"""
from __future__ import annotations

import hashlib
import shlex
from typing import Any, Callable

from orchestrator.errors import HostError
from orchestrator.hosts import Target
from orchestrator.steps.base import Comparison, Difference


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def restore_file(target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
    """Put a file back byte for byte from its journaled backup (shared by file steps)."""
    path, want = undo["path"], undo["sha256"]
    current = target.read_file(path)
    if current is not None and sha256(current) == want:
        log(f"{path} already matches its backup")
        return
    # The journal's checksummed copy first, then the operator-visible FILE.backup.
    for candidate in (undo["backup"], f"{path}.backup"):
        backup = target.read_file(candidate)
        if backup is not None and sha256(backup) == want:
            target.write_file_atomic(path, backup)
            log(f"restored {path} from {candidate}")
            return
    raise HostError(f"no intact backup of {path}: {undo['backup']} and {path}.backup are "
                    f"missing or do not match sha256 {want[:12]}", host=target.name)


def file_conflict(target: Target, undo: dict[str, Any]) -> str | None:
    """A file that is neither as the run found it nor as it left it was changed later."""
    current = target.read_file(undo["path"])
    return conflict_at(target, undo, sha256(current) if current is not None else None)


def conflict_at(target: Target, undo: dict[str, Any], current_sha: str | None) -> str | None:
    """`file_conflict` for a file whose content has the checksum `current_sha` (None: absent),
    e.g. as a newer run's undo in the same rollback will leave it."""
    if current_sha is None or not undo.get("sha256_after") or undo.get("created"):
        return None
    if current_sha not in (undo.get("sha256"), undo["sha256_after"], _later_in_run(target, undo)):
        return (f"{undo['path']} changed after this run wrote it (a later run or a hand edit); "
                "roll back the later runs first (see `rollout history`) or restore it by hand")
    return None


def _later_in_run(target: Target, undo: dict[str, Any]) -> str | None:
    """The file's checksum as later steps of the same run left it, when they changed it further.

    Two steps of one run may write one file (day3: the app's environment, then the redis
    command); the older one's rollback comes after the newer one's restores its input,
    so the file as the newer steps left it is no conflict for it.
    """
    parts = undo["backup"].rsplit("/", 3)  # <state>/runs/<run id>/backups/<sha>
    if len(parts) != 4 or parts[2] != "backups":
        return None
    from orchestrator import journal as jr  # here: journal imports nothing of the steps

    try:
        records = jr.read_run(target, parts[1]).pending_undo
    except Exception:  # noqa: BLE001 — an unreadable journal is reported by the rollback itself
        return None
    chain = undo["sha256_after"]
    for record in records:
        later = record["undo"]
        for ref in (later, later.get("compose")):  # a redis_config step keeps its file under `compose`
            if isinstance(ref, dict) and ref.get("path") == undo["path"] and ref.get("sha256") == chain:
                chain = ref.get("sha256_after") or chain
    return chain if chain != undo["sha256_after"] else None


def restored_sha(undo: dict[str, Any]) -> str | None:
    """The checksum the file has once this undo ran (None: removed)."""
    return None if undo.get("created") else undo.get("sha256")


def manual_restore(undo: dict[str, Any]) -> list[str]:
    """`cp BACKUP PATH` (the file keeps its own mode; the backup is 0600), each path one shell word."""
    return [f"cp {shlex.quote(undo['backup'])} {shlex.quote(undo['path'])}   "
            f"# or from {shlex.quote(undo['path'] + '.backup')}; sha256 {undo['sha256']}"]


def compare_file(target: Target, undo: dict[str, Any]) -> Comparison:
    """The file against the run's record: as the run found it, as it left it, or neither."""
    current = target.read_file(undo["path"])
    now = sha256(current) if current is not None else None
    before = current is None if undo.get("created") else now == undo.get("sha256")
    after = now is not None and now == undo.get("sha256_after")
    differences = []
    if not before and not after:
        differences.append(Difference(
            undo["path"], f"sha256 {now[:12]}" if now else "missing", f"sha256 {str(undo.get('sha256_after'))[:12]}",
            "absent" if undo.get("created") else f"sha256 {str(undo.get('sha256'))[:12]}", planned_by="the run's write"))
    return Comparison(before=before, after=after, differences=differences)


class RestoresFiles:
    """rollback / conflict / compare / manual_undo for undo records {path, backup, sha256, sha256_after}."""

    @classmethod
    def compare(cls, target: Target, undo: dict[str, Any], body: dict[str, Any] | None = None) -> Comparison:
        return compare_file(target, undo)

    @classmethod
    def rollback(cls, target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
        restore_file(target, undo, log)

    @classmethod
    def conflict(cls, target: Target, undo: dict[str, Any]) -> str | None:
        return file_conflict(target, undo)

    @classmethod
    def manual_undo(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        return manual_restore(undo)
