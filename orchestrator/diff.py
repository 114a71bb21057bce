"""Unified diffs and change summaries, with secret redaction."""
from __future__ import annotations

import difflib
import re
from typing import Any

REDACTED = "********"
SECRET_KEY = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|_KEY$|^KEY$|CREDENTIAL|AUTH|"
    r"requirepass|masterauth|masteruser)",
    re.IGNORECASE,
)
# `KEY: value` / `KEY=value` / `- KEY=value` lines of YAML or env files.
SECRET_LINE = re.compile(r"^(?P<head>\s*(?:-\s*)?[\"']?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)[\"']?\s*[:=]\s*)(?P<value>\S.*)$")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def redact_value(key: str, value: Any) -> Any:
    return REDACTED if is_secret_key(key) and value not in (None, "") else value


def redact_line(line: str) -> str:
    m = SECRET_LINE.match(line)
    # a {{ host.data.KEY }} template is a reference, not the secret itself
    if m and is_secret_key(m.group("key")) and "{{" not in m.group("value"):
        return f"{m.group('head')}{REDACTED}"
    return line


def redact_text(text: str) -> str:
    return "\n".join(redact_line(line) for line in text.split("\n"))


def unified(before: str, after: str, path: str, *, context: int = 3) -> str:
    """A unified diff of two texts, secret values redacted on both sides."""
    lines = difflib.unified_diff(
        redact_text(before).splitlines(keepends=True),
        redact_text(after).splitlines(keepends=True),
        fromfile=f"{path} (live)",
        tofile=f"{path} (planned)",
        n=context,
    )
    out = "".join(x if x.endswith("\n") else x + "\n" for x in lines)
    return out


def colorize(diff_text: str) -> str:
    """ANSI colours for a terminal (the CLI decides when to use them)."""
    out = []
    for line in diff_text.splitlines():
        if line.startswith(("+++", "---")):
            out.append(f"\x1b[1m{line}\x1b[0m")
        elif line.startswith("+"):
            out.append(f"\x1b[32m{line}\x1b[0m")
        elif line.startswith("-"):
            out.append(f"\x1b[31m{line}\x1b[0m")
        elif line.startswith("@@"):
            out.append(f"\x1b[36m{line}\x1b[0m")
        else:
            out.append(line)
    return "\n".join(out)
