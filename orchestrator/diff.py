"""Unified diffs and change summaries, with secret redaction.

Two passes, both applied to every file diff and plan copy:

* by name (this module): the value next to a secret-looking name — `KEY: value`,
  `KEY=value`, `export KEY=value`, `{key: value}`, `--requirepass value` (string and
  list form), `?token=value`, a URL's password, every line of a `PASSWORD: |` block;
* by value (`known_secrets`): every secret value this process has seen anywhere
  (inventory, compose files, plans, probes, Redis) wherever it appears again.
"""
from __future__ import annotations

import difflib
import re

from orchestrator import known_secrets
from orchestrator.secret_names import (
    ASSIGNMENT, AUTH_SCHEME, BLOCK_SCALAR, FLAG, FLAG_ITEM, FLOW_PAIR, LIST_ITEM, REDACTED, REDIS_CLI_A, SECRET_LINE,
    URL_PASSWORD, is_secret_flag, is_secret_key,
)


def _redact_url(m: re.Match) -> str:
    head, value = (m.group("head"), m.group("value")) if m.group("head") else (m.group("rhead"), m.group("rvalue"))
    return head + (value if "{{" in value else REDACTED)


def _keyed(test, placeholder: str):
    """A re.sub callback: the value replaced when its key passes `test` (a template is a reference, kept)."""
    def sub(m: re.Match) -> str:
        if not test(m.group("key")) or "{{" in m.group("value"):
            return m.group(0)
        return m.group("head") + placeholder
    return sub


def redact_line(line: str, placeholder: str = REDACTED) -> str:
    """One line with secret values replaced by name: KEY: value, KEY=value, {key: value} pairs,
    --secret-flag value, ?token=value, URL passwords, `Bearer TOKEN`."""
    m = SECRET_LINE.match(line)
    # a {{ host.data.KEY }} template is a reference, not the secret itself
    if m and is_secret_key(m.group("key")) and "{{" not in m.group("value"):
        return f"{m.group('head')}{placeholder}"
    if "{" in line:
        line = FLOW_PAIR.sub(_keyed(is_secret_key, placeholder), line)
    if "://" in line:
        line = URL_PASSWORD.sub(_redact_url, line)
    if "=" in line:
        line = ASSIGNMENT.sub(_keyed(is_secret_key, REDACTED), line)
    if "-" in line:
        line = FLAG.sub(_keyed(is_secret_flag, REDACTED), line)
        if "redis-cli" in line:
            line = REDIS_CLI_A.sub(lambda a: a.group("head") + REDACTED, line)
    return AUTH_SCHEME.sub(lambda a: a.group("head") + REDACTED, line)


def _redact_lines(text: str, placeholder: str) -> str:
    """Line by line, plus what spans lines: the content of a secret's block scalar
    (`PASSWORD: |`) and the list item after a secret flag (`- --requirepass` / `- VALUE`)."""
    out: list[str] = []
    block_column: int | None = None  # a secret key whose block scalar content follows
    value_next = False  # the previous line was `- --requirepass`
    for line in text.split("\n"):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if block_column is not None:
            if not stripped or indent > block_column:
                out.append(line[:indent] + REDACTED if stripped else line)
                continue
            block_column = None
        if value_next:
            value_next = False
            item = LIST_ITEM.match(line)
            if item and "{{" not in item.group("value"):
                out.append(item.group("head") + placeholder)
                continue
        m = SECRET_LINE.match(line)
        if m and is_secret_key(m.group("key")) and BLOCK_SCALAR.match(m.group("value")):
            block_column = m.start("key") - (1 if line[m.start("key") - 1:m.start("key")] in ("'", '"') else 0)
            out.append(line)
            continue
        flag = FLAG_ITEM.match(line)
        value_next = bool(flag and is_secret_flag(flag.group("key")))
        out.append(redact_line(line, placeholder))
    return "\n".join(out)


def redact_text(text: str) -> str:
    """Secrets replaced by name, then every known secret value (`known_secrets`) wherever it is."""
    return known_secrets.scrub(_redact_lines(text, REDACTED))


def redact_yaml(text: str) -> str:
    """Like redact_text, but the result still loads as YAML (a bare ******** would be an alias)."""
    return known_secrets.scrub(_redact_lines(text, f'"{REDACTED}"'), known_secrets.PLAIN_PLACEHOLDER)


def unified(before: str, after: str, path: str, *, context: int = 3) -> str:
    """A unified diff of two texts, secret values redacted on both sides.

    Both texts are read for secrets first (`known_secrets.harvest_file`), so a value
    seen in a file is hidden wherever it appears later, in any output of the run.
    """
    known_secrets.harvest_file(before)
    known_secrets.harvest_file(after)
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
