"""Where a `redis_config` change is made durable, and the compose `command:` edit that does it.

A live CONFIG SET is lost when Redis restarts, so each change is also written
where that Redis takes its configuration from (decided per host):

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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from orchestrator import composefile
from orchestrator.clients.redis import RedisEndpoint, same, shown
from orchestrator.errors import HostError, InputError, StepFailed
from orchestrator.hosts import Target
from orchestrator.secret_names import REDACTED, is_secret_key
from orchestrator.steps.base import compose_project
from orchestrator.steps.compose_limits import ComposeLimitsStep

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


def persistence(target: Target, ep: RedisEndpoint, wanted: list[tuple[str, str]], live: dict[str, str],
                persist: object = None) -> Persistence:
    """Where this host's Redis takes its configuration from, and the compose file as patched.

    The rule: a compose service whose `command:` runs redis-server gets the keys patched
    there (all of them without a config file; with one, those its command line carries);
    a config file takes the rest by CONFIG REWRITE; otherwise the change cannot persist.
    """
    todo = [k for k, v in wanted if not same(k, live[k], v)]
    if persist == LIVE_ONLY:
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
        keys = [k for k, _ in wanted if k in on_command or not per.config_file]
        # a password the file does not already hold as planned would be written there in clear
        secrets_ = [k for k in keys if is_secret_key(k) and on_command.get(k) != [dict(wanted)[k]]]
        if secrets_:
            per.why_not = (f"{secrets_[0]} would be written in clear text into {per.shown_path} (service "
                           f"{ep.service} command:); give Redis a config file (CONFIG REWRITE keeps it there)")
            return per
        per.service, per.command_keys = ep.service, keys
        if keys:
            per.new = composefile.patch_redis_command(per.text, f"{target.name}:{per.path}", ep.service,
                                                      {k: v for k, v in wanted if k in keys})
    per.rewrite = bool(per.config_file) and any(k not in per.command_keys for k in todo)
    if todo and not argv and not per.config_file:
        where = ("is reached by url, so no compose service's command: is known to patch" if not ep.service
                 else f"service {ep.service} in {per.shown_path} has no redis-server `command:` to patch"
                 if per.raw is not None else f"there is no compose file {per.path} to patch")
        per.why_not = f"it was started without a config file (INFO server config_file is empty) and {where}"
    return per


def refusal(ep: RedisEndpoint, per: Persistence) -> InputError:
    return InputError(f"{ep.where}: cannot make this change survive a restart: {per.why_not}. "
                      "A live CONFIG SET alone is lost at the next restart: make it durable, or opt in on this "
                      f"step with `persist: {LIVE_ONLY}`", key="persist", host=ep.target.name)


def command_keys_text(per: Persistence, wanted: list[tuple[str, str]]) -> str:
    return " ".join(f"--{k} {shown(k, dict(wanted)[k])}" for k in per.command_keys)


def redacted_command(text: str, where: str, service: str) -> str:
    """The compose text with the values of secret `--key value` pairs of the redis command
    replaced (a `command:` line is no `KEY: value` line the general redaction would catch)."""
    args = composefile.redis_args(composefile.redis_command(text, where, service) or [])
    secret = {k: REDACTED for k, value in args.items() if is_secret_key(k) and value != [""]}
    return composefile.patch_redis_command(text, where, service, secret) if secret else text


def data_note(ep: RedisEndpoint) -> str:
    """What the recreate does to the data set: kept only by Redis's own persistence."""
    try:
        save, aof, keys = ep.config_get("save"), ep.config_get("appendonly"), ep.call("DBSIZE")
    except HostError:
        return ""
    if (save or "") == "" and aof == "no":
        return f"; its {keys} key(s) are not persisted (save \"\", appendonly no), so it restarts empty"
    return "; its data set is reloaded from its RDB/AOF files (kept across the recreate only on a volume)"


def recreate_redis(target: Target, ep: RedisEndpoint, service: str, log: Callable[[str], None],
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
        raise HostError(f"{ep.where} does not answer within {timeout:g}s after compose up: {exc}",
                        host=target.name) from None
    log(f"{ep.where}: compose up {service}: running from the compose file's command")


def patch_compose(target: Target, ep: RedisEndpoint, per: Persistence, wanted: list[tuple[str, str]],
                  log: Callable[[str], None]) -> None:
    """Write the patched compose file (after `FILE.backup`), recreate Redis from it, and check
    that every key reads back as planned from the new command line."""
    target.write_file_atomic(f"{per.path}.backup", per.raw)  # the copy operators look for first
    ComposeLimitsStep._check_with_compose(target, per.new)
    target.write_file_atomic(per.path, per.new.encode())
    log(f"patched {per.shown_path}: {per.service} command: {command_keys_text(per, wanted)} "
        f"(backup {per.shown_path}.backup)")
    recreate_redis(target, ep, per.service, log)
    for key, value in wanted:  # now from the command line, as after any restart
        now = ep.config_get(key)
        if not same(key, now, value):
            raise StepFailed(f"{ep.where}: recreated from {per.shown_path}, {key} reads {shown(key, now)}, "
                             f"not {shown(key, value)}: the command line did not take it", host=target.name)
    log(f"{ep.where}: recreated from {per.shown_path}; every key reads back as planned")
