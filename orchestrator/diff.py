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


# `KEY: value` pairs inside a flow mapping: `{service: redis, password: "s3cret"}`.
FLOW_PAIR = re.compile(
    r"""(?P<head>[{,]\s*["']?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*:\s+)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s,{}\[\]"'][^,}\]]*)"""
)
# The password of a URL: `redis://user:s3cret@host`, `redis://:s3cret@host`.
URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']*:)(?P<value>[^@\s/\"']+)(?=@)"
    r"|(?P<rhead>rediss?://)(?P<rvalue>[^@\s/:\"']+)(?=@)"  # redis://s3cret@host: redis-cli reads it as the password
)


def _redact_url(m: re.Match) -> str:
    head, value = (m.group("head"), m.group("value")) if m.group("head") else (m.group("rhead"), m.group("rvalue"))
    return head + (value if "{{" in value else REDACTED)


def redact_line(line: str, placeholder: str = REDACTED) -> str:
    """One line with secret values replaced (KEY: value, KEY=value, {key: value} pairs, URL passwords)."""
    m = SECRET_LINE.match(line)
    # a {{ host.data.KEY }} template is a reference, not the secret itself
    if m and is_secret_key(m.group("key")) and "{{" not in m.group("value"):
        return f"{m.group('head')}{placeholder}"
    if "{" in line:
        line = FLOW_PAIR.sub(lambda p: f"{p.group('head')}{placeholder}"
                             if is_secret_key(p.group("key")) and "{{" not in p.group("value") else p.group(0), line)
    if "://" in line:
        line = URL_PASSWORD.sub(_redact_url, line)
    return line


def redact_text(text: str) -> str:
    return "\n".join(redact_line(line) for line in text.split("\n"))


def redact_yaml(text: str) -> str:
    """Like redact_text, but the result still loads as YAML (a bare ******** would be an alias)."""
    return "\n".join(redact_line(line, f'"{REDACTED}"') for line in text.split("\n"))


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
