"""What a secret looks like by name: the names, flags and line shapes whose value is a secret.

Leaf module, shared by `diff` (redaction by name) and `known_secrets` (collection by value).
"""
from __future__ import annotations

import re
from typing import Any

REDACTED = "********"
# Name parts that mark a secret. Short words (PASS, PWD, KEY) only as a whole part of the
# name (DB_PASS, MYSQL_PWD, SIGNING_KEY_B64, X-Api-Key), not inside another word (keyspace).
SECRET_KEY = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIAL|AUTH|COOKIE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
    r"requirepass|masterauth|masteruser|"
    r"(?:^|[^A-Z0-9])(?:PASS|PWD|KEY)(?:[^A-Z0-9]|$)|[A-Z0-9](?:PASS|PWD)$",
    re.IGNORECASE,
)
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
# `KEY: value` / `KEY=value` / `- KEY=value` / `export KEY=value` lines of YAML, env or shell files.
SECRET_LINE = re.compile(
    rf"^(?P<head>\s*(?:-\s*)?(?:export\s+)?[\"']?(?P<key>{_NAME})[\"']?\s*[:=]\s*)(?P<value>\S.*)$"
)
# A YAML block scalar indicator: the value is on the following, more indented lines.
BLOCK_SCALAR = re.compile(r"^[|>][-+0-9]*\s*(?:#.*)?$")
# `KEY=value` anywhere in a line (a shell command, an env list item, a URL query `?token=…`).
ASSIGNMENT = re.compile(
    rf"(?P<head>(?<![\w.-])(?P<key>{_NAME})=)(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"'&;|,)\]}}]+)"
)
# `--requirepass value`, `--requirepass=value`, `"--requirepass", "value"` (a flow list).
FLAG = re.compile(
    r"(?P<head>(?<![\w-])--?(?P<key>[A-Za-z][\w-]*)(?:=|[\"']?\s*,\s*[\"']?|\s+)[\"']?)"
    r"(?P<value>[^\s\"',\]}]+)"
)
# A list item that is only a secret flag: the NEXT list item is its value (`- --requirepass` / `- X`).
FLAG_ITEM = re.compile(r"^\s*-\s+[\"']?--?(?P<key>[A-Za-z][\w-]*)[\"']?\s*$")
LIST_ITEM = re.compile(r"^(?P<head>\s*-\s+)(?P<value>\S.*)$")
# `redis-cli -a PASSWORD`
REDIS_CLI_A = re.compile(r"(?P<head>\bredis-cli\b[^\n]*?[\s\"']-a(?:[\"']?\s*,\s*[\"']?|\s+[\"']?))(?P<value>[^\s\"',\]]+)")
# `Authorization: Bearer TOKEN` and the like, anywhere in a line.
AUTH_SCHEME = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token|Digest)\s+)(?P<value>[A-Za-z0-9._~+/=-]{4,})")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def is_secret_flag(key: str) -> bool:
    """`--requirepass`, `--password`, `--api-key`; not `--no-auth-warning` (a switch without a value)."""
    return is_secret_key(key) and not key.lower().startswith("no-")


def redact_value(key: str, value: Any) -> Any:
    return REDACTED if is_secret_key(key) and value not in (None, "") else value


# `KEY: value` pairs inside a flow mapping: `{service: redis, password: "s3cret"}`.
FLOW_PAIR = re.compile(
    r"""(?P<head>[{,]\s*["']?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*:\s+)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s,{}\[\]"'][^,}\]]*)"""
)
# The password of a URL: `redis://user:s3cret@host`, `redis://:s3cret@host`. It may hold `/`
# and `@` (unencoded): it runs to the LAST `@` that is followed by a host.
_URL_HOST_AHEAD = r"(?=@[^@\s\"'/?#]*(?:[/?#\s\"']|$))"
URL_PASSWORD = re.compile(
    rf"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']*:)(?P<value>[^\s\"']+){_URL_HOST_AHEAD}"
    rf"|(?P<rhead>rediss?://)(?P<rvalue>[^\s\"':]+){_URL_HOST_AHEAD}"  # redis://s3cret@host: redis-cli reads it as the password
)
