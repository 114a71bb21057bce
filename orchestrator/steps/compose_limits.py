"""Step `compose_limits`: set a service's deploy.resources and environment in the compose file."""
from __future__ import annotations

from typing import Any

from orchestrator import composefile
from orchestrator.changes import Change
from orchestrator.compose import ignored_deploy_keys
from orchestrator.diff import unified
from orchestrator.secret_names import redact_value
from orchestrator.engine import container_for, engine_limits
from orchestrator.errors import HostError, InputError
from orchestrator.hosts import Target
from orchestrator.units import parse_size
from orchestrator.steps.base import Comparison, Difference, Step, StepContext, compose_project
from orchestrator.steps.files import RestoresFiles, compare_file, sha256


def _show(key: str, value: Any) -> str:
    """Engine values as an operator reads them: 1.0 GiB, 0.75 CPUs."""
    if key in ("memory", "memory_reservation") and isinstance(value, int):
        return f"{value / 1024**3:.2f} GiB" if value >= 1024**3 else f"{value / 1024**2:.0f} MiB" if value else "unlimited"
    if key == "nano_cpus" and isinstance(value, int):
        return f"{value / 1e9:g} CPUs" if value else "unlimited"
    return str(value)


class ComposeLimitsStep(RestoresFiles, Step):
    kind = "compose_limits"

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = []
        lim, res = body.get("limits") or {}, body.get("reservations") or {}
        try:
            if "memory" in lim and "memory" in res and parse_size(res["memory"]) > parse_size(lim["memory"]):
                issues.append((["reservations", "memory"], f"reservation {res['memory']} exceeds the limit {lim['memory']}"))
        except ValueError:
            pass  # the schema reports bad sizes
        try:
            if "cpus" in lim and "cpus" in res and 0 < float(lim["cpus"]) < float(res["cpus"]):
                issues.append((["reservations", "cpus"], f"reservation {res['cpus']} CPUs exceeds the limit {lim['cpus']}"))
        except (TypeError, ValueError):
            pass
        for key in ("limits", "reservations"):
            cpus = (body.get(key) or {}).get("cpus")
            if isinstance(cpus, str) and cpus.replace(".", "").isdigit() and float(cpus) <= 0:
                issues.append(([key, "cpus"], f"'{cpus}' must be greater than zero"))
        return issues

    @property
    def service(self) -> str:
        return self.body["service"]

    def _paths(self, target: Target) -> tuple[str, str]:
        path = target.path(target.data["compose_file"])
        return path, target.data["compose_file"]

    def _planned(self, target: Target) -> tuple[str, bytes, str]:
        path, shown = self._paths(target)
        raw = target.read_file(path)
        if raw is None:
            raise InputError(f"compose file {path} does not exist", key="compose_file", host=target.name)
        text = raw.decode("utf-8")
        new = composefile.patch(
            text, f"{target.name}:{path}", self.service,
            limits=self.body.get("limits"), reservations=self.body.get("reservations"),
            environment=self.body.get("environment"),
        )
        return text, raw, new

    def diff(self, target: Target) -> list[Change]:
        path, shown = self._paths(target)
        text, raw, new = self._planned(target)
        if new == text:
            return self.ignored_notes()
        changes = [self.change(
            "file", path, f"{shown}: {self.service} resources/environment",
            before=sha256(raw), after=sha256(new.encode()), diff=unified(text, new, shown),
        )]
        changes += self._engine_changes(target)
        return changes + self.ignored_notes()

    def ignored(self) -> list[tuple[str, str, str]]:
        """(key, planned value, why) of the planned deploy.resources keys no container gets."""
        return ignored_deploy_keys(self.body.get("limits"), self.body.get("reservations"))

    def ignored_notes(self) -> list[Change]:
        """Planned keys the compose tool will not pass to the engine: written to the file, but no effect."""
        return [self.change("ignored", f"{self.service}: {key}",
                            f"{self.service}: {key} {value} is written to the compose file but has no effect on this "
                            f"host: {why}", after=value, mutates=False, extra={"key": key, "service": self.service})
                for key, value, why in self.ignored()]

    def _engine_changes(self, target: Target) -> list[Change]:
        """The running container's engine limits against the planned ones."""
        container = container_for(target, self.service, required=False)
        if container is None:
            return []
        live = engine_limits(container)
        planned: dict[str, Any] = {}
        lim, res = self.body.get("limits") or {}, self.body.get("reservations") or {}
        if "memory" in lim:
            planned["memory"] = parse_size(lim["memory"])
        if "cpus" in lim:
            planned["nano_cpus"] = int(round(float(lim["cpus"]) * 1e9))
        if "memory" in res:
            planned["memory_reservation"] = parse_size(res["memory"])
        before = {k: live[k] for k in planned}
        for key, value in (self.body.get("environment") or {}).items():
            planned[f"env.{key}"] = redact_value(key, value)
            before[f"env.{key}"] = redact_value(key, live["environment"].get(key))
        rows = [f"{k} {_show(k, before[k])} → {_show(k, planned[k])}" for k in planned if before[k] != planned[k]]
        if not rows:
            return []
        return [self.change(
            "engine", self.service, f"container {container.name} ({container.short_id}): " + "; ".join(rows),
            before=before, after=planned, mutates=False,
        )]

    @classmethod
    def compare(cls, target: Target, undo: dict[str, Any], body: dict[str, Any] | None = None) -> Comparison:
        """The compose file against the run's record; when it is neither as found nor as left,
        each planned key of the service that is neither as planned nor as before is named."""
        result = compare_file(target, undo)
        if result.before or result.after or not body:
            return result
        live_raw, before_raw = target.read_file(undo["path"]), target.read_file(undo["backup"])
        if live_raw is None or before_raw is None:
            return result
        service, where = body["service"], f"{target.name}:{undo['path']}"
        try:
            live = composefile.declared(live_raw.decode("utf-8"), where, service)
            before = composefile.declared(before_raw.decode("utf-8"), where, service)
        except InputError:
            return result  # not a compose file with that service any more: the checksum says enough
        labels = {"limits": "limit", "reservations": "reservation"}
        rows = [(f"{service} {key} {labels[section]}", section, key, value)
                for section in ("limits", "reservations") for key, value in (body.get(section) or {}).items()]
        rows += [(f"{service} environment {key}", "environment", key, value)
                 for key, value in (body.get("environment") or {}).items()]
        named = []
        for what, section, key, planned in rows:
            now, was = live[section].get(key), before[section].get(key)
            if now is not None and str(now) in (str(planned), str(was)):
                continue
            if section == "environment":
                now, planned, was = (redact_value(key, v) for v in (now, planned, was))
            named.append(Difference(what, "unset" if now is None else str(now), str(planned),
                                    "unset" if was is None else str(was)))
        if not named:
            named = [Difference(undo["path"], "edited outside the plan's keys (which are as planned or as before)")]
        return Comparison(before=False, after=False, differences=named)

    def apply(self, ctx: StepContext) -> None:
        target = ctx.target
        path, shown = self._paths(target)
        text, raw, new = self._planned(target)
        if new == text:
            ctx.log(f"{shown} already as planned")
            return
        backup, digest = ctx.journal.backup(raw)
        ctx.record_undo({"path": path, "backup": backup, "sha256": digest, "sha256_after": sha256(new.encode())})
        target.write_file_atomic(f"{path}.backup", raw, mode_of=path)  # the copy operators look for first
        self._check_with_compose(target, new)
        target.write_file_atomic(path, new.encode())
        ctx.log(f"patched {shown} (backup {shown}.backup)")

    @staticmethod
    def _check_with_compose(target: Target, new_text: str) -> None:
        """Validate the patched file with the compose tool itself before it replaces the original."""
        path = target.path(target.data["compose_file"])
        probe = path.rsplit("/", 1)[0] + "/.rollout-check-" + path.rsplit("/", 1)[-1]
        target.write_file_atomic(probe, new_text.encode(), mode=0o600)
        project = compose_project(target)
        result = target.run(project.shell(project.config_check(probe)))
        target.run(["rm", "-f", probe])
        if not result.ok:
            raise HostError(f"the compose tool rejects the patched file: {result.output.strip()[-1500:]}", host=target.name)
