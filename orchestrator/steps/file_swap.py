"""Step `file_swap`: copy a file over another inside the project directory, atomically.

The destination is backed up twice before it is touched: `<destination>.backup`
next to it (the copy operators look for first) and a checksummed copy in the
run's journal, which the rollback restores byte for byte. Both paths must stay
inside the host's project directory: `..`, absolute paths elsewhere and
symlinks that resolve outside it are refused before anything changes.
"""
from __future__ import annotations

import posixpath
import shlex
from typing import Any, Callable

from orchestrator.changes import Change
from orchestrator.diff import unified
from orchestrator.errors import InputError
from orchestrator.hosts import Target
from orchestrator.steps.base import Step, StepContext
from orchestrator.steps.files import RestoresFiles, sha256


def static_path_issues(value: Any, subpath: list[Any]) -> list[tuple[list[Any], str]]:
    """Checks of a plan path that need no host: no `..` component, not empty."""
    if not isinstance(value, str) or "{{" in value:
        return []  # the schema reports the type; templates are checked once rendered
    if ".." in value.replace("\\", "/").split("/"):
        return [(subpath, f"'{value}' must stay inside the project directory (no '..')")]
    return []


def resolve_in_project(target: Target, value: str, what: str) -> str:
    """The real path on the host of a plan path, refused (InputError) unless it is inside
    the project directory once `..` and symlinks are resolved.

    The last component may not exist yet; its parent directories must.
    """
    if ".." in value.split("/"):
        raise InputError(f"{what} '{value}' must stay inside the project directory (no '..')", key=what, host=target.name)
    project = posixpath.normpath(target.data["project_dir"])
    path = posixpath.normpath(target.path(value))
    # GNU realpath -m resolves every symlink even when the last component is missing;
    # busybox hosts only have readlink -f (which needs the parent to exist).
    script = "; ".join(
        f"realpath -m -- {shlex.quote(p)} 2>/dev/null || readlink -f {shlex.quote(p)} || echo"
        for p in (project, path)
    )
    result = target.run(script)
    lines = result.stdout.splitlines()
    real_project, real = (lines + ["", ""])[:2]
    if not real_project or not real:
        raise InputError(f"{what} '{value}': cannot resolve {path} (does its directory exist?)", key=what, host=target.name)
    if real != real_project and not real.startswith(real_project.rstrip("/") + "/"):
        via = "" if real == path else f" (it resolves to {real})"
        raise InputError(
            f"{target.name}: {what} '{value}' is outside the project directory {project}{via}; "
            "file steps only touch files of the project", key=what,
        )
    return real


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class FileSwapStep(RestoresFiles, Step):
    kind = "file_swap"

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = static_path_issues(body.get("source"), ["source"])
        issues += static_path_issues(body.get("destination"), ["destination"])
        src, dst = body.get("source"), body.get("destination")
        if isinstance(src, str) and isinstance(dst, str) and posixpath.normpath(src) == posixpath.normpath(dst):
            issues.append((["destination"], "source and destination are the same file"))
        return issues

    def _paths(self, target: Target) -> tuple[str, str]:
        source = resolve_in_project(target, self.body["source"], "source")
        destination = resolve_in_project(target, self.body["destination"], "destination")
        if source == destination:
            raise InputError(f"source and destination are the same file ({source})", key="destination", host=target.name)
        return source, destination

    def _read(self, target: Target) -> tuple[str, str, bytes, bytes | None]:
        source, destination = self._paths(target)
        new = target.read_file(source)
        if new is None:
            raise InputError(f"source {self.body['source']} ({source}) does not exist", key="source", host=target.name)
        return source, destination, new, target.read_file(destination)

    def diff(self, target: Target) -> list[Change]:
        source, destination, new, old = self._read(target)
        shown = self.body["destination"]
        if old == new:
            return []
        what = "create" if old is None else f"replace (backup {shown}.backup)"
        return [self.change(
            "file", destination, f"{shown}: {what} with {self.body['source']}",
            before=sha256(old) if old is not None else None, after=sha256(new),
            diff=unified(_text(old or b""), _text(new), shown),
        )]

    def apply(self, ctx: StepContext) -> None:
        target = ctx.target
        source, destination, new, old = self._read(target)
        shown = self.body["destination"]
        if old == new:
            ctx.log(f"{shown} already equals {self.body['source']}")
            return
        if old is None:
            ctx.record_undo({"path": destination, "created": True, "sha256_after": sha256(new)})
            target.write_file_atomic(destination, new)
            ctx.log(f"created {shown} from {self.body['source']}")
            return
        backup, digest = ctx.journal.backup(old)
        ctx.record_undo({"path": destination, "backup": backup, "sha256": digest,
                         "sha256_after": sha256(new), "source": source})
        target.write_file_atomic(f"{destination}.backup", old, mode_of=destination)  # the copy operators look for first
        target.write_file_atomic(destination, new)
        ctx.log(f"swapped {self.body['source']} over {shown} (backup {shown}.backup)")

    @classmethod
    def rollback(cls, target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
        if undo.get("created"):
            # The file did not exist before: remove it (whatever it holds now).
            target.check(["rm", "-f", undo["path"]], f"removing {undo['path']}")
            log(f"removed {undo['path']} (it did not exist before the run)")
            return
        super().rollback(target, undo, log)

    @classmethod
    def manual_undo(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        if undo.get("created"):
            return [f"rm -f {shlex.quote(undo['path'])}"]
        return super().manual_undo(target, undo)
