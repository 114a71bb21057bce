"""Step `redis_config`: CONFIG SET keys on a live Redis, old values journaled first.

Redis is reached through `clients.redis` (docker exec into the service's container, or a
redis:// URL from the controller). Each change is also made durable where that Redis takes
its configuration from (its compose `command:` or its config file: `redis_persistence`), or
the step refuses unless it says `persist: live-only`.

Secrets
-------
Values of secret keys (`requirepass`, `masterauth`, … — `secret_names.is_secret_key`)
are never printed, journaled or put in an exception. The old value (needed for
the rollback) and, for `requirepass`, the new one (needed to authenticate
until the rollback restores the old password) go into owner-only, checksummed
backup files of the run (`secretstore`), salted so the checksum in the journal
does not fingerprint the password; the undo record holds only their paths and
checksums.
"""
from __future__ import annotations

import shlex
from typing import Any, Callable

from orchestrator.changes import Change
from orchestrator.clients.redis import RedisEndpoint, RedisReplyError, endpoint_check, endpoint_of, same, shown
from orchestrator.diff import unified
from orchestrator.engine import container_for, require_service
from orchestrator.errors import HostError, InputError, StepFailed
from orchestrator.hosts import Target
from orchestrator.secret_names import REDACTED, is_secret_key
from orchestrator.secretstore import manual_secret, read_secret, store_secret
from orchestrator.steps.base import Comparison, Difference, Step, StepContext, compose_project
from orchestrator.steps.files import file_conflict, manual_restore, restore_file, sha256
from orchestrator.steps.redis_persistence import (LIVE_ONLY, Persistence, command_keys_text, data_note,
                                                  patch_compose, persistence, recreate_redis, redacted_command,
                                                  refusal)

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
            raise InputError(f"{ep.where} has no config key(s) {', '.join(unknown)} (CONFIG GET returns nothing; "
                             "misspelt, or not in this Redis version?)", key="set", host=ep.target.name)
        return live

    def persistence(self, target: Target, ep: RedisEndpoint, live: dict[str, str]) -> Persistence:
        return persistence(target, ep, self.wanted, live, self.body.get("persist"))

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
            diff = unified(redacted_command(per.text, where, per.service),
                           redacted_command(per.new, where, per.service), per.shown_path)
            keys = command_keys_text(per, self.wanted)
            data = data_note(ep)
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
            raise refusal(ep, per)
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
            raise refusal(ep, per)
        if not todo and not per.patches_compose:
            return
        keys: list[dict[str, Any]] = []
        for key, value in todo:
            if is_secret_key(key):
                entry: dict[str, Any] = {"key": key, "secret": True, "old": store_secret(ctx.journal, live[key]),
                                         "old_empty": live[key] == ""}
                if key == "requirepass":  # the rollback authenticates with it until it restores the old one
                    entry["new"] = store_secret(ctx.journal, value)
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
            undo["auth"] = store_secret(ctx.journal, ep.passwords[0])
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
                raise StepFailed(f"{ep.where}: CONFIG SET {label} refused: {exc}", host=target.name) from None
            if key == "requirepass" and value:
                ep.passwords.insert(0, value)
            now = ep.config_get(key)
            if not same(key, now, value):
                raise StepFailed(f"{ep.where}: after CONFIG SET {label} the server reads back {shown(key, now)}; "
                                 "it did not take the value", host=target.name)
            ctx.log(f"{ep.where}: {key} {shown(key, live[key])} → {shown(key, now)} (read back)")
        if per.patches_compose:  # after the live change: a value Redis refuses never reaches the file
            patch_compose(target, ep, per, self.wanted, ctx.log)
        if per.rewrite:
            try:
                ep.call("CONFIG", "REWRITE")
            except RedisReplyError as exc:
                raise StepFailed(f"{ep.where}: CONFIG REWRITE into {per.config_file} failed: {exc}",
                                 host=target.name) from None
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
                raise HostError(f"{ep.where}: CONFIG SET {key} {shown(key, old)} refused: {exc}",
                                host=target.name) from None
            if key == "requirepass":
                ep.passwords.insert(0, old or None)
            now = ep.config_get(key)
            if not same(key, now, old):
                raise HostError(f"{ep.where}: {key} reads back {shown(key, now)} after restoring {shown(key, old)}",
                                host=target.name)
            changed = True
            log(f"{ep.where}: {key} restored to {shown(key, old)} (read back)")
        if undo.get("persist") and changed:
            try:
                ep.call("CONFIG", "REWRITE")
            except RedisReplyError as exc:
                raise HostError(f"{ep.where}: CONFIG REWRITE after the restore failed: {exc}",
                                host=target.name) from None
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
