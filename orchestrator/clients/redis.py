"""The Redis client that the `redis_config` step and the `redis_info` probe share.

How Redis is reached
--------------------
* `service: redis` (the usual case): `docker exec` into the service's container
  (found by its compose labels) and run the `redis-cli` that is in it. This works
  on a remote host whose Redis port is not published to the controller.
  `redis-cli --no-raw` prints every reply unambiguously (`(error) …`, `(nil)`,
  quoted strings), so an error reply is never mistaken for a value. A password
  reaches redis-cli through the exec's environment (`REDISCLI_AUTH`) and a secret
  value through a shell builtin into `redis-cli -x`, so neither is ever in an argv
  (`ps`, `docker events`, pyinfra's command log).
* `url: redis://[user:pass@]host:port[/db]` (or `rediss://`): the controller
  connects over TCP with redis-py (one connection per command: AUTH, SELECT, the
  command; TLS with the system's CA store and a host name check for `rediss://`).
  It needs no redis-cli on either machine and keeps the password out of every
  command line. redis-py is imported only when a connection is opened: loading a
  plan must not import it (see hosts.prepare_imports_for).

Secret values (the passwords, a `requirepass` being set) never reach an error this
module raises; a CONFIG GET answer for a secret key is added to `known_secrets`, so
every output hides it from then on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from orchestrator import known_secrets
from orchestrator.engine import container_for, exec_in
from orchestrator.errors import HostError, InputError
from orchestrator.hosts import Target
from orchestrator.secret_names import REDACTED, is_secret_key


class RedisReplyError(HostError):
    """Redis answered a command with an error reply (the message is the server's)."""


class RedisAuthError(RedisReplyError):
    """The server refused the password (or wants one): the next password may open it."""


_AUTH_ERRORS = ("NOAUTH", "WRONGPASS", "ERR INVALID PASSWORD", "ERR AUTH")
# A server without a password answers AUTH with one of these; like redis-cli, go on without it.
_NO_PASSWORD_SET = ("without any password configured", "no password is set")


def scrub(text: str, hidden: list[str]) -> str:
    for value in hidden:
        if value:
            text = text.replace(value, REDACTED)
    return text


# -- values as Redis reads them back -----------------------------------------------------

_MEM_UNITS = {"b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_MEM = re.compile(r"(-?[0-9]+)(b|k|kb|m|mb|g|gb)")
_TOKEN_ALIASES = {"replica": "slave"}  # client-output-buffer-limit reads back the old class name
_KEYSPACE_ALL = set("g$lshzxetd")


def normalize(key: str, value: Any) -> str:
    """How Redis reads a value back: memory units as bytes, lower case, single spaces.

    `384mb` → `402653184`; `allkeys-LRU` → `allkeys-lru`; secret values are compared exactly.
    """
    text = str(value)
    if is_secret_key(key):
        return text
    if key == "notify-keyspace-events":  # case-sensitive flags in any order; A = g$lshzxetd
        flags = set(text.replace("A", "")) | (_KEYSPACE_ALL if "A" in text else set())
        return "".join(sorted(flags))
    out = []
    for token in text.strip().lower().split():
        m = _MEM.fullmatch(token)
        out.append(str(int(m.group(1)) * _MEM_UNITS[m.group(2)]) if m else _TOKEN_ALIASES.get(token, token))
    return " ".join(out)


def same(key: str, a: Any, b: Any) -> bool:
    return normalize(key, a) == normalize(key, b)


def shown(key: str, value: Any) -> str:
    """A value as it may be printed: secrets redacted, the empty string visible."""
    if is_secret_key(key):
        return REDACTED if value not in (None, "") else "(empty)"
    return "(empty)" if value in (None, "") else str(value)


# -- one server -------------------------------------------------------------------------------


@dataclass
class RedisEndpoint:
    """One Redis server and the passwords that may open it (tried in order on NOAUTH)."""

    target: Target
    service: str | None = None
    url: str | None = None  # without its password
    username: str | None = None
    passwords: list[str | None] = field(default_factory=lambda: [None])
    timeout: float = 10.0

    def __post_init__(self) -> None:
        seen: list[str | None] = []
        for p in self.passwords or [None]:
            if p not in seen:
                seen.append(p)
        self.passwords = seen

    # -- description ----------------------------------------------------------
    @property
    def where(self) -> str:
        return f"redis service {self.service}" if self.service else f"redis {self.url}"

    @property
    def hidden(self) -> list[str]:
        return [p for p in self.passwords if p]

    def _error(self, message: str) -> HostError:
        return HostError(f"{self.where}: {message}", host=self.target.name)

    # -- commands -------------------------------------------------------------
    def call(self, *args: str, secret_last: bool = False) -> Any:
        """Run one command; the reply, or RedisReplyError. Tries each password on NOAUTH.

        `secret_last`: the last argument is a secret (never in an argv, log or error).
        """
        last_error: RedisReplyError | None = None
        for i, password in enumerate(list(self.passwords)):
            try:
                reply = self._call(list(args), password, secret_last)
            except RedisAuthError as exc:
                last_error = exc
                continue
            if i:  # remember the password that worked
                self.passwords.insert(0, self.passwords.pop(i))
            return reply
        raise self._error(f"authentication failed ({last_error}); give the password with `password:` "
                          "(e.g. \"{{ host.data.redis_password }}\") or in the URL")

    def _call(self, args: list[str], password: str | None, secret_last: bool) -> Any:
        hidden = self.hidden + ([args[-1]] if secret_last else [])
        if self.service:
            return self._exec(args, password, secret_last, hidden)
        return self._tcp(args, password, hidden)

    # docker exec + redis-cli --no-raw: no port needs to reach the controller
    def container(self):
        c = container_for(self.target, self.service)
        if c.status != "running":
            raise self._error(f"container {c.name} is {c.status}, not running; Redis cannot be reached")
        return c

    def _exec(self, args: list[str], password: str | None, secret_last: bool, hidden: list[str]) -> Any:
        c = self.container()
        env = {}
        if password:
            env["REDISCLI_AUTH"] = password
        if secret_last and args[-1] != "":
            env["ROLLOUT_REDIS_VALUE"] = args[-1]
            script = 'printf %s "$ROLLOUT_REDIS_VALUE" | exec redis-cli --no-raw --no-auth-warning -x "$@"'
            argv = ["sh", "-c", script, "sh", *args[:-1]]
        else:
            argv = ["redis-cli", "--no-raw", "--no-auth-warning", *args]
        try:
            # CONFIG GET/SET and INFO are safe to repeat, which exec_in may do
            code, stdout, stderr = exec_in(c, argv, environment=env or None)
        except Exception as exc:  # engine errors: container gone, stopped, engine down
            raise self._error(f"docker exec into {c.name} failed: {scrub(str(exc), hidden)}") from None
        if code != 0 or not stdout.strip():
            detail = scrub((stderr or stdout).strip(), hidden)[-500:] or f"exit code {code}"
            if code == 126 or code == 127 or "executable file not found" in detail:
                detail += " (is redis-cli in the image?)"
            raise self._error(f"redis-cli in {c.name} failed: {detail}")
        if args[0].upper() == "INFO":
            return stdout
        return parse_cli_reply(stdout.rstrip("\n").split("\n"), hidden)

    # TCP from the controller: redis-py
    def _tcp(self, args: list[str], password: str | None, hidden: list[str]) -> Any:
        import redis  # only when a URL is reached: loading a plan must not import it
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        parts = urlsplit(self.url)
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise self._error(f"the URL's database {db!r} is not a number (redis://host:port/0)")
        options: dict[str, Any] = dict(
            host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=int(db),
            username=self.username if password else None, password=password, decode_responses=True,
            encoding_errors="replace", socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            protocol=2,  # RESP2: flat replies (CONFIG GET a list, as from redis-cli), and no HELLO for old servers
            retry=Retry(NoBackoff(), 0))  # a command is run once; callers retry where it is safe
        if parts.scheme == "rediss":
            conn = redis.SSLConnection(ssl_cert_reqs="required", ssl_check_hostname=True, **options)
        else:
            conn = redis.Connection(**options)
        connected = False
        try:
            conn.connect()  # AUTH and SELECT
            connected = True
            conn.send_command(*args)
            return conn.read_response()
        except redis.AuthenticationError as exc:
            if password and any(text in str(exc) for text in _NO_PASSWORD_SET):
                return self._tcp(args, None, hidden)
            raise RedisAuthError(scrub(str(exc), hidden)) from None
        except redis.ResponseError as exc:
            raise RedisReplyError(scrub(str(exc), hidden)) from None
        except (redis.RedisError, OSError) as exc:  # refused, reset, closed, timeouts, TLS
            prefix = "" if connected else "cannot connect: "
            raise self._error(prefix + scrub(str(exc), hidden)) from None
        finally:
            conn.disconnect()

    # -- the few commands the step and the probe need ---------------------------
    def config_get(self, key: str) -> str | None:
        """The live value of a config key, or None when the server has no such key."""
        try:
            reply = self.call("CONFIG", "GET", key)
        except RedisReplyError as exc:
            raise self._error(f"CONFIG GET {key} failed: {exc}") from None
        if not isinstance(reply, list):
            raise self._error("unexpected CONFIG GET reply")
        pairs = dict(zip(reply[0::2], reply[1::2]))
        if is_secret_key(key):
            known_secrets.add(pairs.get(key))  # the live password, hidden in every output from now on
        return pairs.get(key)

    def config_set(self, key: str, value: str) -> None:
        reply = self.call("CONFIG", "SET", key, value, secret_last=is_secret_key(key))
        if reply != "OK":
            raise RedisReplyError(f"unexpected reply {reply!r}")

    def info(self, section: str | None = None) -> dict[str, str]:
        try:
            text = self.call(*(["INFO", section] if section else ["INFO"]))
        except RedisReplyError as exc:
            raise self._error(f"INFO failed: {exc}") from None
        return parse_info(text)


def parse_info(text: str | bytes) -> dict[str, str]:
    """INFO's `field:value` lines (section headers and blank lines skipped), values as text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = {}
    for line in str(text).splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


# -- redis-cli --no-raw output (the exec transport) ----------------------------------------

_REPR_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def _unrepr(text: str) -> str:
    """Undo redis-cli's sdscatrepr quoting: "a\\"b\\x00" → a"b\\0."""
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "x" and i + 3 < len(body):
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_REPR_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_ITEM = re.compile(r"^\s*\d+\) (.*)$")


def parse_cli_reply(lines: list[str], hidden: list[str]) -> Any:
    """Parse `redis-cli --no-raw` output of a flat reply (status, error, nil, integer, string, array)."""
    first = lines[0] if lines else ""
    if first.startswith("(error) "):
        message = scrub(first[len("(error) "):], hidden)
        raise (RedisAuthError if message.upper().startswith(_AUTH_ERRORS) else RedisReplyError)(message)
    if first in ("(empty array)", "(empty list or set)"):
        return []
    if _ITEM.match(first):
        return [_scalar(_ITEM.match(line).group(1)) for line in lines if _ITEM.match(line)]
    return _scalar("\n".join(lines))


def _scalar(text: str) -> Any:
    if text == "(nil)":
        return None
    if text.startswith("(integer) "):
        return int(text[len("(integer) "):])
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _unrepr(text)
    return text


# -- the server a step or probe body names ---------------------------------------------------


def split_url(url: str) -> tuple[str, str | None, str | None]:
    """redis://user:pass@h:p/db → (redis://h:p/db, user, pass)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:  # a rendered template's bad port: bad input, as the plan's own would be
        raise InputError(f"not a valid redis:// URL: {exc}", key="url") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and user is not None:  # redis://:pass@ or redis://pass@ (redis-cli reads it as the password)
        user, password = None, user
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), user or None, password or None


def endpoint_of(target: Target, body: dict[str, Any]) -> RedisEndpoint:
    """The Redis a step or probe body names (`service`, or `url` with an optional password)."""
    password = body.get("password") or None
    if body.get("url"):
        url, user, url_password = split_url(body["url"])
        return RedisEndpoint(target, url=url, username=user, passwords=[url_password or password])
    return RedisEndpoint(target, service=body.get("service", "redis"), passwords=[password])


def endpoint_check(body: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """`service` or `url`, not both (for the step's and the probe's check_spec)."""
    if body.get("service") and body.get("url"):
        return [(["url"], "give either `service` (docker exec into its container) or `url`, not both")]
    if not body.get("service") and not body.get("url"):
        return [([], "missing `service` (docker exec into the service's container, e.g. redis) or `url` (redis://host:port)")]
    if body.get("url") and "{{" not in str(body["url"]):  # a templated URL is checked when it is rendered
        try:
            urlsplit(str(body["url"])).port
        except ValueError as exc:
            return [(["url"], f"not a valid redis:// URL: {exc}")]
    if body.get("url") and body.get("password") and split_url(body["url"])[2]:
        return [(["password"], "the URL already carries a password; give it once")]
    return []
