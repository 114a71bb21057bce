"""Step `redis_config`: CONFIG SET keys on a live Redis, old values journaled first.

How Redis is reached
--------------------
* `service: redis` (the usual case): `docker exec` into the service's container
  (found by its compose labels) and run the `redis-cli` that is in it. This works
  on a remote host whose Redis port is not published. `redis-cli --no-raw`
  prints every reply unambiguously (`(error) …`, `(nil)`, quoted strings), so
  an error reply is never mistaken for a value. A password reaches redis-cli
  through the exec's environment (`REDISCLI_AUTH`) and a secret value through
  a shell builtin into `redis-cli -x`, so neither is ever in an argv (`ps`,
  `docker events`, pyinfra's command log).
* `url: redis://[user:pass@]host:port[/db]` (or `rediss://`): a tiny RESP
  client over a socket from the controller, in this module. Chosen over
  `redis-cli -u URL` run on the host because it needs no redis-cli on either
  machine, keeps the password out of every command line and shell log, and
  reads exact bytes instead of parsing a CLI's output.

Durability
----------
A live CONFIG SET is lost when Redis restarts, so each change is also written
where that Redis takes its configuration from (decided per host by `persistence`):

* its compose service's `command:` runs `redis-server` (`--key value` pairs, list or
  string form): the pairs are patched with the same round-trip editor as
  compose_limits (backup, journal, `FILE.backup`, validated by the compose tool,
  restored byte for byte), and the service is recreated from the file, because a
  `docker restart` re-runs a container's *original* command; a Redis with a config
  file as well has only the keys its command line carries patched there (they
  override the file), the rest go to the file;
* it has a config file (`INFO server` config_file): `CONFIG REWRITE`, and on
  rollback the old values are set and rewritten again;
* neither: the step refuses (exit 2, nothing changed) unless it says
  `persist: live-only`. A secret (`requirepass`, …) is never written into a compose
  file: it needs a config file, or `persist: live-only`.

Secrets
-------
Values of secret keys (`requirepass`, `masterauth`, … — `secret_names.is_secret_key`)
are never printed, journaled or put in an exception. The old value (needed for
the rollback) and, for `requirepass`, the new one (needed to authenticate
until the rollback restores the old password) go into owner-only, checksummed
backup files of the run (`journal.backup`), salted so the checksum in the
journal does not fingerprint the password; the undo record holds only their
paths and checksums.
"""
from __future__ import annotations

import re
import secrets as _secrets
import shlex
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlsplit, urlunsplit

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from orchestrator import composefile, known_secrets
from orchestrator.changes import Change
from orchestrator.diff import unified
from orchestrator.secret_names import REDACTED, is_secret_key
from orchestrator.engine import container_for, exec_in, require_service
from orchestrator.errors import HostError, InputError, StepFailed
from orchestrator.hosts import Target
from orchestrator.steps.base import Comparison, Difference, Step, StepContext, compose_project
from orchestrator.steps.compose_limits import ComposeLimitsStep
from orchestrator.steps.files import file_conflict, manual_restore, restore_file, sha256

# -- keys a plan may not touch -------------------------------------------------------

_FILES = "it makes Redis write or read files at a path a client chooses"
_SECURITY = "it weakens the server's security"
_NETWORK = "it changes where the server listens, which is not a live tuning change"
FORBIDDEN: dict[str, str] = {
    "dir": _FILES, "dbfilename": _FILES, "logfile": _FILES, "pidfile": _FILES, "appendfilename": _FILES,
    "appenddirname": _FILES, "aclfile": _FILES, "include": _FILES, "loadmodule": _FILES,
    "cluster-config-file": _FILES, "syslog-ident": _FILES,
    "rename-command": _SECURITY, "protected-mode": _SECURITY, "replicaof": _SECURITY, "slaveof": _SECURITY,
    "user": _SECURITY, "acl-pubsub-default": _SECURITY,
    "bind": _NETWORK, "bind-source-addr": _NETWORK, "port": _NETWORK, "tls-port": _NETWORK,
}
FORBIDDEN_PREFIXES: dict[str, str] = {
    "enable-": _SECURITY,  # enable-protected-configs, enable-debug-command, enable-module-command, …
    "unixsocket": _FILES,  # unixsocket, unixsocketperm
    "tls-": _FILES,  # certificate/key files and TLS auth settings
}


def forbidden_reason(key: str) -> str | None:
    key = key.lower()
    if key in FORBIDDEN:
        return FORBIDDEN[key]
    return next((why for prefix, why in FORBIDDEN_PREFIXES.items() if key.startswith(prefix)), None)


# -- value normalisation ---------------------------------------------------------------

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


# -- talking to Redis -------------------------------------------------------------------


class RedisReplyError(HostError):
    """Redis answered a command with an error reply (the message is the server's)."""


_AUTH_ERRORS = ("NOAUTH", "WRONGPASS", "ERR INVALID PASSWORD", "ERR AUTH")


def _scrub(text: str, hidden: list[str]) -> str:
    for value in hidden:
        if value:
            text = text.replace(value, REDACTED)
    return text


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

    # -- commands -------------------------------------------------------------
    def call(self, *args: str, secret_last: bool = False) -> Any:
        """Run one command; the reply, or RedisReplyError. Tries each password on NOAUTH.

        `secret_last`: the last argument is a secret (never in an argv, log or error).
        """
        last_error: RedisReplyError | None = None
        for i, password in enumerate(list(self.passwords)):
            try:
                reply = self._call(list(args), password, secret_last)
            except RedisReplyError as exc:
                if str(exc).upper().startswith(_AUTH_ERRORS):
                    last_error = exc
                    continue
                raise
            if i:  # remember the password that worked
                self.passwords.insert(0, self.passwords.pop(i))
            return reply
        raise HostError(f"{self.target.name}: {self.where}: authentication failed ({last_error}); give the password "
                        "with `password:` (e.g. \"{{ host.data.redis_password }}\") or in the URL")

    def _call(self, args: list[str], password: str | None, secret_last: bool) -> Any:
        if self.service:
            return self._exec(args, password, secret_last)
        return self._resp(args, password, secret_last)

    # docker exec + redis-cli --no-raw
    def container(self):
        c = container_for(self.target, self.service)
        if c.status != "running":
            raise HostError(f"{self.target.name}: {self.where}: container {c.name} is {c.status}, not running; "
                            "Redis cannot be reached")
        return c

    def _exec(self, args: list[str], password: str | None, secret_last: bool) -> Any:
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
        hidden = self.hidden + ([args[-1]] if secret_last else [])
        try:
            # CONFIG GET/SET and INFO are safe to repeat, which exec_in may do
            code, stdout, stderr = exec_in(c, argv, environment=env or None)
        except Exception as exc:  # engine errors: container gone, stopped, engine down
            raise HostError(f"{self.target.name}: {self.where}: docker exec into {c.name} failed: "
                            f"{_scrub(str(exc), hidden)}") from None
        if code != 0 or not stdout.strip():
            detail = _scrub((stderr or stdout).strip(), hidden)[-500:] or f"exit code {code}"
            if code == 126 or code == 127 or "executable file not found" in detail:
                detail += " (is redis-cli in the image?)"
            raise HostError(f"{self.target.name}: {self.where}: redis-cli in {c.name} failed: {detail}")
        if args[0].upper() == "INFO":
            return stdout
        return parse_cli_reply(stdout.rstrip("\n").split("\n"), hidden)

    # socket + RESP
    def _resp(self, args: list[str], password: str | None, secret_last: bool) -> Any:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as exc:
            raise HostError(f"{self.target.name}: {self.where}: cannot connect: {exc}") from None
        try:
            if parts.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            stream = sock.makefile("rb")
            commands = []
            if password:
                commands.append(["AUTH", self.username, password] if self.username else ["AUTH", password])
            db = parts.path.strip("/")
            if db and db != "0":
                commands.append(["SELECT", db])
            commands.append(args)
            sock.sendall(b"".join(encode_command(c) for c in commands))
            replies = [read_reply(stream) for _ in commands]
        except (OSError, ValueError) as exc:
            raise HostError(f"{self.target.name}: {self.where}: {_scrub(str(exc), self.hidden)}") from None
        finally:
            sock.close()
        for command, reply in zip(commands, replies):
            if command[0] == "AUTH" and "without any password configured" in str(reply):
                continue  # as redis-cli does: a server without a password accepts the command anyway
            if isinstance(reply, RedisReplyError):
                raise RedisReplyError(_scrub(str(reply), self.hidden + ([args[-1]] if secret_last else [])))
        return replies[-1]

    # -- the few commands the step and the probe need ---------------------------
    def config_get(self, key: str) -> str | None:
        """The live value of a config key, or None when the server has no such key."""
        try:
            reply = self.call("CONFIG", "GET", key)
        except RedisReplyError as exc:
            raise HostError(f"{self.target.name}: {self.where}: CONFIG GET {key} failed: {exc}") from None
        if not isinstance(reply, list):
            raise HostError(f"{self.target.name}: {self.where}: unexpected CONFIG GET reply")
        pairs = dict(zip(reply[0::2], reply[1::2]))
        if is_secret_key(key):
            known_secrets.add(pairs.get(key))  # the live password, hidden in every output from now on
        return pairs.get(key)

    def config_set(self, key: str, value: str) -> None:
        secret = is_secret_key(key)
        reply = self.call("CONFIG", "SET", key, value, secret_last=secret)
        if reply != "OK":
            raise RedisReplyError(f"unexpected reply {reply!r}")

    def info(self, section: str | None = None) -> dict[str, str]:
        try:
            text = self.call(*(["INFO", section] if section else ["INFO"]))
        except RedisReplyError as exc:
            raise HostError(f"{self.target.name}: {self.where}: INFO failed: {exc}") from None
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        out = {}
        for line in str(text).splitlines():
            line = line.strip()
            if line and not line.startswith("#") and ":" in line:
                k, v = line.split(":", 1)
                out[k] = v
        return out


def encode_command(args: list[str]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        data = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(stream) -> Any:
    """One RESP2 reply; an error reply is returned as a RedisReplyError (not raised)."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ValueError("connection closed by the server")
    kind, rest = line[:1], line[1:-2].decode("utf-8", "replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        return RedisReplyError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = stream.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(stream) for _ in range(n)]
    raise ValueError(f"not a RESP reply: {line[:40]!r}")


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
        raise RedisReplyError(_scrub(first[len("(error) "):], hidden))
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


# -- salted secret backups ---------------------------------------------------------------

_SECRET_HEADER = b"# rollout secret backup; the value is everything after this line; salt "


def secret_blob(value: str) -> bytes:
    """What a secret's backup file holds: a salted header line, then the value.

    The salt keeps the backup's checksum (in the journal and in EMERGENCY
    output) from fingerprinting the password.
    """
    return _SECRET_HEADER + _secrets.token_hex(16).encode() + b"\n" + value.encode()


def read_secret(target: Target, ref: dict[str, Any]) -> str:
    import hashlib

    raw = target.read_file(ref["backup"])
    if raw is None or hashlib.sha256(raw).hexdigest() != ref["sha256"]:
        state = "missing" if raw is None else "corrupt (checksum mismatch)"
        raise HostError(f"{target.name}: secret backup {ref['backup']} is {state}")
    return raw.split(b"\n", 1)[1].decode()


def _store_secret(ctx: StepContext, value: str) -> dict[str, str]:
    path, digest = ctx.journal.backup(secret_blob(value))
    return {"backup": path, "sha256": digest}


def manual_secret(ref: dict[str, Any]) -> str:
    """A shell word that reads a secret from its backup on the host."""
    return f'"$(tail -n +2 {shlex.quote(ref["backup"])})"'


# -- the step -------------------------------------------------------------------------------


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """redis://user:pass@h:p/db → (redis://h:p/db, user, pass)."""
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and user is not None:  # redis://:pass@ or redis://pass@ (redis-cli reads it as the password)
        user, password = None, user
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), user or None, password or None


def endpoint_of(target: Target, body: dict[str, Any]) -> RedisEndpoint:
    """The Redis a step or probe body names (`service`, or `url` with an optional password)."""
    password = body.get("password") or None
    if body.get("url"):
        url, user, url_password = _split_url(body["url"])
        return RedisEndpoint(target, url=url, username=user, passwords=[url_password or password])
    return RedisEndpoint(target, service=body.get("service", "redis"), passwords=[password])


def endpoint_check(body: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """`service` or `url`, not both (shared with the redis_info probe)."""
    if body.get("service") and body.get("url"):
        return [(["url"], "give either `service` (docker exec into its container) or `url`, not both")]
    if not body.get("service") and not body.get("url"):
        return [([], "missing `service` (docker exec into the service's container, e.g. redis) or `url` (redis://host:port)")]
    if body.get("url") and body.get("password") and _split_url(body["url"])[2]:
        return [(["password"], "the URL already carries a password; give it once")]
    return []


LIVE_ONLY = "live-only"


@dataclass
class Persistence:
    """Where one step's values are made durable on one host."""

    live_only: bool = False
    why_not: str | None = None  # it cannot persist, and why
    config_file: str | None = None
    rewrite: bool = False  # CONFIG REWRITE into config_file
    service: str | None = None  # compose service whose command is patched
    path: str | None = None  # the compose file
    shown_path: str | None = None
    raw: bytes | None = None
    text: str | None = None
    new: str | None = None
    command_keys: list[str] = field(default_factory=list)

    @property
    def patches_compose(self) -> bool:
        return self.new is not None and self.new != self.text


def _redacted_command(text: str, where: str, service: str) -> str:
    """The compose text with the values of secret `--key value` pairs of the redis command
    replaced (a `command:` line is no `KEY: value` line the general redaction would catch)."""
    args = composefile.redis_args(composefile.redis_command(text, where, service) or [])
    secret = {k: REDACTED for k, value in args.items() if is_secret_key(k) and value != [""]}
    return composefile.patch_redis_command(text, where, service, secret) if secret else text


def recreate_redis(target: Target, ep: "RedisEndpoint", service: str, log: Callable[[str], None],
                   timeout: float = 60.0) -> None:
    """`compose up -d --no-deps SERVICE` (recreates it only when its configuration in the file
    changed, as compose's config hash says), then wait until Redis answers again."""
    project = compose_project(target)
    target.check(project.shell(project.up([service])), f"recreating {service} from the compose file",
                 timeout=max(120, timeout * 2))
    try:
        Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.5), reraise=True,
                 retry=retry_if_exception_type(HostError))(lambda: ep.call("PING"))
    except HostError as exc:
        raise HostError(f"{target.name}: {ep.where} does not answer within {timeout:g}s after compose up: {exc}") from None
    log(f"{ep.where}: compose up {service}: running from the compose file's command")


class RedisConfigStep(Step):
    kind = "redis_config"

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = endpoint_check(body)
        for key, value in (body.get("set") or {}).items():
            why = forbidden_reason(str(key))
            if why:
                issues.append((["set", key], f"'{key}' cannot be set by a plan: {why}; change it in redis.conf "
                                             "and restart Redis instead"))
            elif isinstance(value, str) and ("\n" in value or "\r" in value):
                issues.append((["set", key], f"the value of '{key}' must be one line"))
        return issues

    # -- reading ----------------------------------------------------------------
    @property
    def wanted(self) -> list[tuple[str, str]]:
        """(key, value) in the order they are set: `requirepass` last, so every
        other key is set and checked with the password the server had before."""
        items = [(k, str(v)) for k, v in self.body["set"].items()]
        return sorted(items, key=lambda kv: kv[0] == "requirepass")

    def endpoint(self, target: Target) -> RedisEndpoint:
        ep = endpoint_of(target, self.body)
        planned = str(self.body["set"].get("requirepass") or "")
        if planned:  # a server this plan already ran on asks for the planned password
            ep.passwords.append(planned)
        return ep

    def _live(self, ep: RedisEndpoint) -> dict[str, str]:
        live, unknown = {}, []
        for key, _ in self.wanted:
            value = ep.config_get(key)
            if value is None:
                unknown.append(key)
            else:
                live[key] = value
        if unknown:
            raise InputError(f"{ep.target.name}: {ep.where} has no config key(s) {', '.join(unknown)} "
                             "(CONFIG GET returns nothing; misspelt, or not in this Redis version?)", key="set")
        return live

    def persistence(self, target: Target, ep: RedisEndpoint, live: dict[str, str]) -> Persistence:
        """Where this host's Redis takes its configuration from, and the compose file as patched.

        The rule: a compose service whose `command:` runs redis-server gets the keys patched
        there (all of them without a config file; with one, those its command line carries);
        a config file takes the rest by CONFIG REWRITE; otherwise the change cannot persist.
        """
        todo = [k for k, v in self.wanted if not same(k, live[k], v)]
        if self.body.get("persist") == LIVE_ONLY:
            return Persistence(live_only=True)
        per = Persistence(config_file=ep.info("server").get("config_file", "").strip() or None)
        argv = None
        if ep.service:
            per.path = target.path(target.data["compose_file"])
            per.shown_path = target.data["compose_file"]
            per.raw = target.read_file(per.path)
            if per.raw is not None:
                per.text = per.raw.decode("utf-8")
                try:
                    argv = composefile.redis_command(per.text, f"{target.name}:{per.path}", ep.service)
                except InputError:
                    argv = None  # the file does not declare this service
        if argv:
            on_command = composefile.redis_args(argv)
            keys = [k for k, _ in self.wanted if k in on_command or not per.config_file]
            # a password the file does not already hold as planned would be written there in clear
            secrets_ = [k for k in keys if is_secret_key(k) and on_command.get(k) != [dict(self.wanted)[k]]]
            if secrets_:
                per.why_not = (f"{secrets_[0]} would be written in clear text into {per.shown_path} (service "
                               f"{ep.service} command:); give Redis a config file (CONFIG REWRITE keeps it there)")
                return per
            per.service, per.command_keys = ep.service, keys
            if keys:
                per.new = composefile.patch_redis_command(per.text, f"{target.name}:{per.path}", ep.service,
                                                          {k: v for k, v in self.wanted if k in keys})
        per.rewrite = bool(per.config_file) and any(k not in per.command_keys for k in todo)
        if todo and not argv and not per.config_file:
            where = ("is reached by url, so no compose service's command: is known to patch" if not ep.service
                     else f"service {ep.service} in {per.shown_path} has no redis-server `command:` to patch"
                     if per.raw is not None else f"there is no compose file {per.path} to patch")
            per.why_not = (f"it was started without a config file (INFO server config_file is empty) and {where}")
        return per

    def _refuse(self, ep: RedisEndpoint, per: Persistence) -> InputError:
        return InputError(f"{ep.target.name}: {ep.where}: cannot make this change survive a restart: {per.why_not}. "
                          "A live CONFIG SET alone is lost at the next restart: make it durable, or opt in on this "
                          f"step with `persist: {LIVE_ONLY}`", key="persist")

    def _persist_changes(self, target: Target, ep: RedisEndpoint, live: dict[str, str], per: Persistence,
                         todo: list[str]) -> list[Change]:
        changes = []
        if per.live_only:
            if todo:
                olds = ", ".join(f"{k} {shown(k, live[k])}" for k in todo)
                changes.append(self.change("redis", f"{ep.where}: not persisted",
                                           f"{ep.where}: NOT persisted (persist: {LIVE_ONLY}): the next restart of "
                                           f"Redis brings back {olds}", mutates=False))
            return changes
        if per.patches_compose:
            where = f"{target.name}:{per.path}"
            diff = unified(_redacted_command(per.text, where, per.service),
                           _redacted_command(per.new, where, per.service), per.shown_path)
            keys = " ".join(f"--{k} {shown(k, dict(self.wanted)[k])}" for k in per.command_keys)
            data = self._data_note(ep)
            changes.append(self.change(
                "file", per.path,
                f"{per.shown_path}: {per.service} command: {keys} — persisted in {per.shown_path} {per.service} "
                f"command:; {per.service} is then recreated from it (a `docker restart` re-runs a container's "
                f"original command){data}",
                before=sha256(per.raw), after=sha256(per.new.encode()), diff=diff))
        if per.rewrite:
            changes.append(self.change("redis", f"{ep.where}: CONFIG REWRITE",
                                       f"{ep.where}: persisted by CONFIG REWRITE to {per.config_file}",
                                       after=per.config_file))
        return changes

    @staticmethod
    def _data_note(ep: RedisEndpoint) -> str:
        """What the recreate does to the data set: kept only by Redis's own persistence."""
        try:
            save, aof, keys = ep.config_get("save"), ep.config_get("appendonly"), ep.call("DBSIZE")
        except HostError:
            return ""
        if (save or "") == "" and aof == "no":
            return f"; its {keys} key(s) are not persisted (save \"\", appendonly no), so it restarts empty"
        return "; its data set is reloaded from its RDB/AOF files (kept across the recreate only on a volume)"

    def diff(self, target: Target) -> list[Change]:
        if self.body.get("service"):
            require_service(target, self.body["service"])
        ep = self.endpoint(target)
        live = self._live(ep)
        changes, todo = [], []
        for key, want in self.wanted:
            before = live[key]
            if same(key, before, want):
                note = "" if is_secret_key(key) or str(before) == want else f" = {want}"
                changes.append(self.change("redis", f"{ep.where}: {key}",
                                           f"{ep.where}: {key} already {shown(key, before)}{note} (at its target; "
                                           "not changed)",
                                           before=shown(key, before), after=shown(key, want), mutates=False))
            else:
                todo.append(key)
                summary = (f"{key}: {shown(key, before)} → {REDACTED} (secret)" if is_secret_key(key)
                           else f"{key}: {shown(key, before)} → {want}")
                changes.append(self.change("redis", f"{ep.where}: {key}", f"{ep.where}: {summary}",
                                           before=shown(key, before), after=shown(key, want)))
        per = self.persistence(target, ep, live)
        if per.why_not and todo:
            raise self._refuse(ep, per)
        return changes + self._persist_changes(target, ep, live, per, todo)

    # -- applying ---------------------------------------------------------------
    def apply(self, ctx: StepContext) -> None:
        target = ctx.target
        ep = self.endpoint(target)
        live = self._live(ep)
        todo = [(k, v) for k, v in self.wanted if not same(k, live[k], v)]
        for key, value in self.wanted:
            if (key, value) not in todo:
                ctx.log(f"{ep.where}: {key} already {shown(key, live[key])}")
        per = self.persistence(target, ep, live)
        if per.why_not and todo:
            raise self._refuse(ep, per)
        if not todo and not per.patches_compose:
            return
        keys: list[dict[str, Any]] = []
        for key, value in todo:
            if is_secret_key(key):
                entry: dict[str, Any] = {"key": key, "secret": True, "old": _store_secret(ctx, live[key]),
                                         "old_empty": live[key] == ""}
                if key == "requirepass":  # the rollback authenticates with it until it restores the old one
                    entry["new"] = _store_secret(ctx, value)
                keys.append(entry)
            else:
                keys.append({"key": key, "old": live[key], "new": value})
        undo: dict[str, Any] = {"keys": keys, "persist": per.rewrite, "config_file": per.config_file if per.rewrite else None}
        if ep.service:
            c = ep.container()
            undo.update(service=ep.service, container=c.name)
        else:
            undo.update(url=ep.url, username=ep.username)
        if ep.passwords[0]:  # the password that opened the server before the change (tried first on undo)
            undo["auth"] = _store_secret(ctx, ep.passwords[0])
        if per.patches_compose:
            backup, digest = ctx.journal.backup(per.raw)
            undo["compose"] = {"path": per.path, "backup": backup, "sha256": digest,
                               "sha256_after": sha256(per.new.encode()), "service": per.service}
        ctx.record_undo(undo)  # every old value and the compose backup are journaled before the first change

        for key, value in todo:
            label = f"{key} {shown(key, value) if is_secret_key(key) else value}"
            try:
                ep.config_set(key, value)
            except RedisReplyError as exc:
                raise StepFailed(f"{ctx.target.name}: {ep.where}: CONFIG SET {label} refused: {exc}") from None
            if key == "requirepass" and value:
                ep.passwords.insert(0, value)
            now = ep.config_get(key)
            if not same(key, now, value):
                raise StepFailed(f"{ctx.target.name}: {ep.where}: after CONFIG SET {label} the server reads back "
                                 f"{shown(key, now)}; it did not take the value")
            ctx.log(f"{ep.where}: {key} {shown(key, live[key])} → {shown(key, now)} (read back)")
        if per.patches_compose:  # after the live change: a value Redis refuses never reaches the file
            target.write_file_atomic(f"{per.path}.backup", per.raw)  # the copy operators look for first
            ComposeLimitsStep._check_with_compose(target, per.new)
            target.write_file_atomic(per.path, per.new.encode())
            ctx.log(f"patched {per.shown_path}: {per.service} command: "
                    + " ".join(f"--{k} {shown(k, dict(self.wanted)[k])}" for k in per.command_keys)
                    + f" (backup {per.shown_path}.backup)")
            recreate_redis(target, ep, per.service, ctx.log)
            for key, value in self.wanted:  # now from the command line, as after any restart
                now = ep.config_get(key)
                if not same(key, now, value):
                    raise StepFailed(f"{target.name}: {ep.where}: recreated from {per.shown_path}, {key} reads "
                                     f"{shown(key, now)}, not {shown(key, value)}: the command line did not take it")
            ctx.log(f"{ep.where}: recreated from {per.shown_path}; every key reads back as planned")
        if per.rewrite:
            try:
                ep.call("CONFIG", "REWRITE")
            except RedisReplyError as exc:
                raise StepFailed(f"{ctx.target.name}: {ep.where}: CONFIG REWRITE into {per.config_file} failed: {exc}") from None
            ctx.log(f"{ep.where}: CONFIG REWRITE → {per.config_file}")
        if per.live_only and todo:
            ctx.log(f"{ep.where}: live only (persist: {LIVE_ONLY}): a restart of Redis undoes this change")

    # -- undoing ----------------------------------------------------------------
    @classmethod
    def _undo_endpoint(cls, target: Target, undo: dict[str, Any]) -> RedisEndpoint:
        passwords: list[str | None] = []
        for entry in undo["keys"]:
            if entry["key"] == "requirepass" and entry.get("new"):
                passwords.append(read_secret(target, entry["new"]))
        if undo.get("auth"):
            passwords.append(read_secret(target, undo["auth"]))
        passwords.append(None)
        if undo.get("service"):
            return RedisEndpoint(target, service=undo["service"], passwords=passwords)
        return RedisEndpoint(target, url=undo["url"], username=undo.get("username"), passwords=passwords)

    @classmethod
    def rollback(cls, target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
        ep = cls._undo_endpoint(target, undo)
        compose = undo.get("compose")
        if compose:  # the file first, then Redis recreated from it (a no-op when it never was)
            restore_file(target, compose, log)
            recreate_redis(target, ep, compose["service"], log)
        changed = False
        for entry in reversed(undo["keys"]):  # requirepass (set last) is restored first
            key = entry["key"]
            old = read_secret(target, entry["old"]) if entry.get("secret") else entry["old"]
            current = ep.config_get(key)
            if current is not None and same(key, current, old):
                log(f"{ep.where}: {key} already {shown(key, old)}")
                continue
            try:
                ep.config_set(key, old)
            except RedisReplyError as exc:
                raise HostError(f"{target.name}: {ep.where}: CONFIG SET {key} {shown(key, old)} refused: {exc}") from None
            if key == "requirepass":
                ep.passwords.insert(0, old or None)
            now = ep.config_get(key)
            if not same(key, now, old):
                raise HostError(f"{target.name}: {ep.where}: {key} reads back {shown(key, now)} after restoring "
                                f"{shown(key, old)}")
            changed = True
            log(f"{ep.where}: {key} restored to {shown(key, old)} (read back)")
        if undo.get("persist") and changed:
            try:
                ep.call("CONFIG", "REWRITE")
            except RedisReplyError as exc:
                raise HostError(f"{target.name}: {ep.where}: CONFIG REWRITE after the restore failed: {exc}") from None
            log(f"{ep.where}: CONFIG REWRITE → {undo.get('config_file')}")

    @classmethod
    def conflict(cls, target: Target, undo: dict[str, Any]) -> str | None:
        return file_conflict(target, undo["compose"]) if undo.get("compose") else None

    @classmethod
    def compare(cls, target: Target, undo: dict[str, Any], body: dict[str, Any] | None = None) -> Comparison:
        """Each journaled key's live value (CONFIG GET) against its old and new value."""
        ep = cls._undo_endpoint(target, undo)
        planned = {k: str(v) for k, v in ((body or {}).get("set") or {}).items()}
        before = after = True
        differences = []
        for entry in undo["keys"]:
            key = entry["key"]
            old = read_secret(target, entry["old"]) if entry.get("secret") else entry["old"]
            if entry.get("secret"):  # the plan copy is redacted: only a kept backup tells the new value
                new = read_secret(target, entry["new"]) if entry.get("new") else None
            else:
                new = entry.get("new", planned.get(key))
            live = ep.config_get(key)
            at_old, at_new = same(key, live, old), new is not None and same(key, live, new)
            before, after = before and at_old, after and at_new
            if not at_old and not at_new:
                differences.append(Difference(f"{ep.where} {key}", shown(key, live),
                                              None if new is None else shown(key, new), shown(key, old)))
        return Comparison(before=before, after=after, differences=differences)

    @classmethod
    def manual_undo(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        lines = []
        if undo.get("compose"):
            project = compose_project(target)
            lines += manual_restore(undo["compose"]) + [project.shell(project.up([undo["compose"]["service"]]))]
        return lines + cls._manual_config_set(target, undo)

    @classmethod
    def _manual_config_set(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        if undo.get("service"):
            container = undo.get("container")
            try:
                c = container_for(target, undo["service"], required=False)
                container = c.name if c is not None else container
            except Exception:  # noqa: BLE001 — the engine may be what is broken
                pass
            if not container:
                project = target.data.get("compose_project", "")
                container = (f"$(docker ps -q --filter label=com.docker.compose.project={project} "
                             f"--filter label=com.docker.compose.service={undo['service']})")

            def cli(auth: str | None, args: str, stdin: str | None = None) -> str:
                env = f"REDISCLI_AUTH={auth} " if auth else ""
                pipe = f"{stdin} | " if stdin else ""
                return (f"{pipe}{env}docker exec {'-i ' if stdin else ''}{'-e REDISCLI_AUTH ' if auth else ''}"
                        f"{container} redis-cli {'-x ' if stdin else ''}{args}")
        else:
            def cli(auth: str | None, args: str, stdin: str | None = None) -> str:
                env = f"REDISCLI_AUTH={auth} " if auth else ""
                pipe = f"{stdin} | " if stdin else ""
                return f"{pipe}{env}redis-cli -u {shlex.quote(undo['url'])} {'-x ' if stdin else ''}{args}"

        # Secrets are read from their backups on the host, never written out: as the
        # environment variable redis-cli reads (REDISCLI_AUTH) or on stdin (`redis-cli -x`).
        auth = manual_secret(undo["auth"]) if undo.get("auth") else None
        for entry in undo["keys"]:
            if entry["key"] == "requirepass" and entry.get("new"):
                auth = manual_secret(entry["new"])
        lines = []
        for entry in reversed(undo["keys"]):
            key = entry["key"]
            if entry.get("secret") and not entry.get("old_empty"):
                lines.append(cli(auth, f"CONFIG SET {key}", stdin=f"tail -n +2 {shlex.quote(entry['old']['backup'])}"))
            else:
                value = "''" if entry.get("secret") else shlex.quote(str(entry["old"]))
                lines.append(cli(auth, f"CONFIG SET {key} {value}"))
            if key == "requirepass":
                auth = None if entry.get("old_empty") else manual_secret(entry["old"])
        if undo.get("persist"):
            lines.append(cli(auth, "CONFIG REWRITE"))
        return lines
