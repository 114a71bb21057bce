"""The `@local` host without pyinfra: the three primitives `Target` uses, on this machine.

pyinfra's local connector runs `sh -c COMMAND` through gevent; importing pyinfra
(its gevent monkey-patch, its entry-point scans) costs more than a whole `rollout
diff` of a local stack needs. This class answers the same calls with the same
results, so a `Target` cannot tell the two apart: `run_shell_command` returns
`(ok, output)` where `output.stdout` / `output.stderr` are the lines joined
without their final newline, as pyinfra's `CommandOutput` gives them.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class LocalOutput:
    stdout: str
    stderr: str


def _lines_text(raw: bytes) -> str:
    # pyinfra reads output line by line and joins the lines with "\n": one final newline goes.
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text


class LocalHost:
    """A stand-in for a connected pyinfra `@local` host."""

    name = "@local"
    connected = True

    def run_shell_command(self, command: str, _timeout: float | None = None, **_: Any) -> tuple[bool, LocalOutput]:
        try:
            proc = subprocess.run(["sh", "-c", command], capture_output=True, stdin=subprocess.DEVNULL,
                                  timeout=_timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"command timed out after {_timeout:g}s") from exc
        return proc.returncode == 0, LocalOutput(_lines_text(proc.stdout), _lines_text(proc.stderr))

    def get_file(self, remote_filename: str, filename_or_io: IO[bytes], **_: Any) -> bool:
        with open(remote_filename, "rb") as src:
            shutil.copyfileobj(src, filename_or_io)
        return True

    def put_file(self, filename_or_io: IO[bytes], remote_filename: str, **_: Any) -> bool:
        with open(remote_filename, "wb") as dst:
            shutil.copyfileobj(filename_or_io, dst)
            dst.flush()
        return True
