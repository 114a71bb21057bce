"""The secret values this process knows, and the scrubbing every output goes through.

Redaction by name (`diff.redact_text`) hides the value next to a secret-looking name. This
module hides the VALUE itself wherever it shows up again: in an error message, a probe's URL,
a compose command, a JSON document. Values are collected as the run meets them:

* inventory host data under secret-looking keys (`ssh_password`, `api_token`, …) — `load_inventory`;
* rendered step and probe bodies (a compose env value under DB_PASS, a Redis `requirepass`,
  a probe URL's password or `?token=`, an http probe's `Authorization` header) — `Step`/`Probe`;
* every file a step diffs (compose files: env values under secret names, `--requirepass X` in a
  `command:` in string or list form, block scalars) — `diff.unified`;
* Redis `CONFIG GET` answers for secret keys.

Every output goes through `scrub`: the terminal (`guard_streams` wraps stdout and stderr, so
`click.echo`, `_fail` and a traceback alike), the journal (`scrub_record` in `Journal.write`),
the run's plan copy (`diff.redact_yaml`) and saved plans (`hosts.write_local_file`). Byte-for-byte
backups of operator files are not outputs: they are written as they are, owner-only.

Values shorter than MIN_LENGTH, numbers and YAML/JSON words (`true`, `null`) are not collected:
under secret-looking names they are mostly settings (`AUTH_ENABLED: "true"`, `TOKEN_TTL: 3600`,
`KEY_BITS: 2048`), and replacing `true` or `3600` everywhere would corrupt JSON output, saved
plans and hashes. Such a value is still hidden by name next to its key.
"""
from __future__ import annotations

import io
import json
import re
import sys
from typing import Any, TextIO
from urllib.parse import quote, unquote

from orchestrator.secret_names import (ASSIGNMENT, AUTH_SCHEME, FLAG, REDACTED, REDIS_CLI_A, SECRET_LINE, URL_PASSWORD,
                                       is_secret_flag, is_secret_key)

MIN_LENGTH = 6
# A placeholder that is valid anywhere in YAML (plain, single- or double-quoted): for the plan copy.
PLAIN_PLACEHOLDER = "REDACTED"
_WORDS = {"true", "false", "null", "none", "yes", "no", "on", "off", "~"}
_NUMBER = re.compile(r"^[-+]?[0-9][0-9_.,:]*$")
# redis.conf: `requirepass VALUE`, `masterauth "VALUE"`
_REDIS_CONF = re.compile(r"^\s*(?:requirepass|masterauth|masteruser)\s+[\"']?(?P<value>[^\s\"']+)", re.IGNORECASE)

_values: set[str] = set()
_pattern: re.Pattern | None = None


def add(value: Any) -> None:
    """Remember a secret value (and each line of a multi-line one); short or trivial values are ignored."""
    global _pattern
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return
    text = str(value)
    candidates = [text.strip()] + ([line.strip() for line in text.splitlines()] if "\n" in text else [])
    for candidate in candidates:
        if (len(candidate) < MIN_LENGTH or "{{" in candidate or candidate.lower() in _WORDS
                or _NUMBER.match(candidate) or candidate in _values):
            continue
        _values.add(candidate)
        _pattern = None


def values() -> set[str]:
    return set(_values)


def clear() -> None:
    """Forget every value (tests)."""
    global _pattern
    _values.clear()
    _pattern = None


# -- collecting -------------------------------------------------------------------------------


def _unquoted(value: str) -> str:
    value = value.strip().rstrip(",;")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        value = value[1:-1]
    return value


def _add_url_part(value: str) -> None:
    add(value)
    add(unquote(value))


def harvest_text(text: str) -> None:
    """Secrets a text shows by name, in any of the forms `diff.redact_line` hides."""
    for line in text.splitlines():
        m = SECRET_LINE.match(line)
        if m and is_secret_key(m.group("key")) and not m.group("value").lstrip().startswith(("|", ">")):
            add(_unquoted(m.group("value")))
        if "://" in line:
            for u in URL_PASSWORD.finditer(line):
                _add_url_part(u.group("value") or u.group("rvalue"))
        for a in ASSIGNMENT.finditer(line):
            if is_secret_key(a.group("key")):
                _add_url_part(_unquoted(a.group("value")))
        for f in FLAG.finditer(line):
            if is_secret_flag(f.group("key")):
                add(_unquoted(f.group("value")))
        for r in REDIS_CLI_A.finditer(line):
            add(r.group("value"))
        for b in AUTH_SCHEME.finditer(line):
            add(b.group("value"))
        c = _REDIS_CONF.match(line)
        if c:
            add(c.group("value"))


def harvest(value: Any) -> None:
    """Secrets in a loaded document (host data, a rendered plan body, a compose file): values
    under secret-looking keys, the argument after a secret flag in a list, and every string's
    own secrets (`harvest_text`)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and not isinstance(v, (dict, list)):
                add(v)
            harvest(v)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str) and i + 1 < len(value) and re.fullmatch(r"--?[A-Za-z][\w-]*", item) \
                    and is_secret_flag(item.lstrip("-")) and isinstance(value[i + 1], str) \
                    and not value[i + 1].startswith("-"):
                add(value[i + 1])  # ["redis-server", "--requirepass", "X"]
            if item == "-a" and i + 1 < len(value) and any(isinstance(x, str) and "redis-cli" in x for x in value[:i]):
                add(value[i + 1])  # ["CMD", "redis-cli", "-a", "X", "ping"]
            harvest(item)
    elif isinstance(value, str):
        harvest_text(value)


def harvest_file(text: str) -> None:
    """A file a step shows: as YAML when it is YAML (compose files), and line by line in any case."""
    from ruamel.yaml import YAML

    try:
        doc = YAML(typ="safe", pure=True).load(text)
    except Exception:  # noqa: BLE001 - not YAML (next.config.js, .env): the lines are still read
        doc = None
    harvest(doc)
    harvest_text(text)


# -- scrubbing --------------------------------------------------------------------------------


def _forms(value: str) -> set[str]:
    """The value as it may be written: raw, JSON-escaped, URL-encoded."""
    return {value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value, safe="/:@")}


def _compiled() -> re.Pattern | None:
    global _pattern
    if _pattern is None and _values:
        forms = sorted({f for v in _values for f in _forms(v) if f}, key=len, reverse=True)
        # The backslashes before a match are captured, so a match right after a JSON escape's
        # backslash (\n, \") takes that backslash with it and the JSON stays valid.
        _pattern = re.compile(r"(\\*)(?:" + "|".join(re.escape(f) for f in forms) + ")")
    return _pattern


def scrub(text: str, placeholder: str = REDACTED) -> str:
    """Every known secret value in `text` replaced by the placeholder."""
    pattern = _compiled()
    if pattern is None or not isinstance(text, str) or not text:
        return text

    def sub(m: re.Match) -> str:
        slashes = m.group(1)
        return slashes[:len(slashes) - len(slashes) % 2] + placeholder

    return pattern.sub(sub, text)


def scrub_obj(value: Any) -> Any:
    """Every string in a JSON-like value scrubbed (keys too)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_obj(k): scrub_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_obj(v) for v in value]
    return value


# Journal fields the rollback, `status` and `history` read back as they were written: ids,
# kinds, checksums and the undo records (which by design hold paths and checksums, never a
# secret). Everything else (reasons, errors, probe results, the title) is scrubbed.
JOURNAL_VERBATIM = frozenset({"t", "at", "run_id", "plan", "version", "sha256", "step", "id", "kind", "undo",
                              "outcome", "steps", "pending", "index", "phase", "probe", "complete", "verified", "n", "stage"})


def scrub_record(fields: dict[str, Any]) -> dict[str, Any]:
    """A journal record's fields, scrubbed except those in JOURNAL_VERBATIM."""
    return {k: v if k in JOURNAL_VERBATIM else scrub_obj(v) for k, v in fields.items()}


# -- the terminal -----------------------------------------------------------------------------


class ScrubbingStream(io.TextIOBase):
    """A text stream that scrubs known secrets out of everything written through it.

    It has no `buffer`, so nothing (click included) can write bytes past it.
    """

    def __init__(self, inner: TextIO):
        self.inner = inner

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("ScrubbingStream takes text")
        self.inner.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "errors", None)


def guard_streams() -> None:
    """Route stdout and stderr through `scrub` (idempotent): the CLI calls this first."""
    if not isinstance(sys.stdout, ScrubbingStream) and sys.stdout is not None:
        sys.stdout = ScrubbingStream(sys.stdout)
    if not isinstance(sys.stderr, ScrubbingStream) and sys.stderr is not None:
        sys.stderr = ScrubbingStream(sys.stderr)
