"""Step `recreate`: recreate named compose services and verify the engine applied the file."""
from __future__ import annotations

from typing import Any, Callable

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator import composefile
from orchestrator.changes import Change
from orchestrator.engine import container_for, engine_limits
from orchestrator.errors import HostError, InputError, StepFailed
from orchestrator.hosts import Target
from orchestrator.units import parse_duration, parse_size
from orchestrator.steps.base import Comparison, Difference, Step, StepContext, compose_project


def _compose_text(target: Target) -> tuple[str, str]:
    path = target.path(target.data["compose_file"])
    raw = target.read_file(path)
    if raw is None:
        raise InputError(f"compose file {path} does not exist", key="compose_file", host=target.name)
    return raw.decode("utf-8"), path


def human_size(n: int) -> str:
    """Engine bytes as a compose file writes them: 1G, 1.5G, 512M; 0 is unlimited."""
    if not n:
        return "unlimited"
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{round(n / size, 2):g}{unit}"
    return f"{n}B"


def human_cpus(nano: int) -> str:
    return f"{nano / 1e9:g}" if nano else "unlimited"


# (label, compose section, compose key, engine_limits key, compose value → engine value, engine value → text)
ENGINE_CHECKS = [
    ("memory limit", "limits", "memory", "memory", parse_size, human_size),
    ("cpus limit", "limits", "cpus", "nano_cpus", lambda v: int(round(float(v) * 1e9)), human_cpus),
    ("memory reservation", "reservations", "memory", "memory_reservation", parse_size, human_size),
]


def engine_limits_shown(container) -> dict[str, str]:
    """The engine's limits of a container as text, keyed like ENGINE_CHECKS' labels."""
    live = engine_limits(container)
    return {label: show(live[key]) for label, _, _, key, _, show in ENGINE_CHECKS}


def engine_differences(target: Target, service: str, container=None) -> list[Difference]:
    """Where the running container differs from what the compose file declares (limits,
    reservation, environment); a secret-safe text for environment values."""
    text, path = _compose_text(target)
    want = composefile.declared(text, f"{target.name}:{path}", service)
    live = engine_limits(container or container_for(target, service))
    out = []
    for label, section, key, live_key, convert, show in ENGINE_CHECKS:
        declared = want[section].get(key)
        if declared is not None and convert(str(declared)) != live[live_key]:
            out.append(Difference(f"{service} {label}", show(live[live_key]), str(declared), planned_by="the compose file"))
    for key, value in want["environment"].items():
        if value is None or "$" in value:
            continue  # interpolated by compose from the shell/.env: not comparable here
        if live["environment"].get(key) != value:
            out.append(Difference(f"{service} environment {key}", "different", None, planned_by="the compose file"))
    return out


def _mismatch(d: Difference) -> str:
    if d.planned is None:
        return f"{d.what} differs from the compose file"
    return f"{d.what} is {d.live}, the compose file says {d.planned}"


def engine_mismatches(target: Target, service: str) -> list[str]:
    """Where the running container differs from what the compose file declares."""
    return [_mismatch(d) for d in engine_differences(target, service)]


def config_hashes(target: Target, services: list[str]) -> dict[str, str] | None:
    """The config hash compose would label each service's container with now (None when the
    compose tool cannot say). Compose v1 hashes the service's options and its image ID."""
    project = compose_project(target)
    result = target.run(project.shell(project.config_hash(services)), timeout=120)
    if not result.ok:
        return None
    hashes = {}
    for line in result.stdout.splitlines():
        name, _, digest = line.strip().partition(" ")
        if digest:
            hashes[name] = digest
    return hashes


def out_of_date(target: Target, service: str, hashes: dict[str, str] | None) -> list[str]:
    """Why the service's container does not run what the compose file describes; [] when it does.

    Both compose's own test (the container's config-hash label against the hash of the file
    now: what `compose up` uses to decide) and the engine's applied limits and environment
    (a `docker update` changes those without touching the label)."""
    c = container_for(target, service, required=False)
    if c is None:
        return [f"{service} has no container yet"]
    reasons = []
    if c.status != "running":
        reasons.append(f"container {c.name} is {c.status}")
    want = (hashes or {}).get(service)
    if want is None:
        reasons.append(f"the compose tool cannot compute {service}'s config hash")
    elif c.labels.get("com.docker.compose.config-hash") != want:
        reasons.append(f"{service}'s compose configuration (or image) differs from the one its container was created with")
    else:
        # compose v1 hashes the image ID too; v2 does not: compare it here for both
        import docker.errors

        ref = (c.attrs.get("Config") or {}).get("Image")
        try:
            now = target.docker.images.get(ref).id if ref else None
        except docker.errors.ImageNotFound:
            now = None
        if now != c.attrs.get("Image"):
            reasons.append(f"{ref} now points to another image than the one {c.name} runs")
    return reasons + [_mismatch(d) for d in engine_differences(target, service, c)]


def _last_health_log(container) -> str:
    logs = (container.attrs.get("State", {}).get("Health") or {}).get("Log") or []
    return (logs[-1].get("Output") or "").strip()[:300] if logs else "no health check output"


def recreate(target: Target, services: list[str], timeout: float, log: Callable[[str], None]) -> None:
    """`compose up -d --no-deps --force-recreate SERVICES`, then wait until each runs."""
    project = compose_project(target)
    target.check(project.shell(project.up(services, recreate=True)), f"recreating {', '.join(services)}",
                 timeout=max(60, timeout * 2))

    def not_ready() -> list[str]:
        waiting = []
        for s in services:
            c = container_for(target, s, required=False)
            if c is None or c.status != "running":
                waiting.append(s)
                continue
            health = (c.attrs.get("State", {}).get("Health") or {}).get("Status")
            if health == "unhealthy":
                raise StepFailed(f"{s} is unhealthy after the recreate: {_last_health_log(c)}", host=target.name)
            if health not in (None, "healthy"):
                waiting.append(f"{s} ({health})")
        return waiting

    # Poll until nothing is waiting; after `timeout` the last answer is returned.
    waiting = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.5), retry=retry_if_result(bool),
                       retry_error_callback=lambda state: state.outcome.result())(not_ready)
    if waiting:
        raise StepFailed(f"not running/healthy within {timeout:g}s: {', '.join(waiting)}", host=target.name)
    log(f"recreated {', '.join(services)}")


class RecreateStep(Step):
    kind = "recreate"
    undo_stage = 1

    @property
    def timeout(self) -> float:
        return parse_duration(self.body.get("healthy_within", "60s"))

    def _change(self, target: Target, service: str, why: str) -> Change:
        c = container_for(target, service, required=False)
        current = f"container {c.name} ({c.short_id})" if c else "no container yet"
        return self.change("service", service, f"recreate {service} only ({current}): {why}; then check docker "
                           "inspect against the compose file", before=c.id if c else None)

    def _check_services(self, target: Target) -> None:
        """Bad input unless the compose file declares every named service."""
        text, path = _compose_text(target)
        doc = composefile.load(text, f"{target.name}:{path}")
        for s in self.body["services"]:
            composefile.service(doc, s, f"{target.name}:{path}")

    def diff(self, target: Target) -> list[Change]:
        """A recreate of each service whose container does not run what the compose file says now."""
        self._check_services(target)
        hashes = config_hashes(target, self.body["services"])
        changes = []
        for s in self.body["services"]:
            reasons = out_of_date(target, s, hashes)
            if reasons:
                changes.append(self._change(target, s, "; ".join(reasons)))
        return changes

    def diff_in_plan(self, target: Target, earlier: list[Change]) -> list[Change]:
        """Earlier file or image changes of the plan are not on the host yet, so the live
        comparison cannot see them: then the recreate is planned (at apply time, with those
        changes made, `apply` compares again and recreates only what is out of date)."""
        causes = sorted({c.step for c in earlier if c.mutates and c.kind in ("file", "image")})
        if not causes:
            return self.diff(target)
        self._check_services(target)
        return [self._change(target, s, f"to deploy what step(s) {', '.join(causes)} change")
                for s in self.body["services"]]

    def apply(self, ctx: StepContext) -> None:
        hashes = config_hashes(ctx.target, self.body["services"])
        stale = {s: reasons for s in self.body["services"] if (reasons := out_of_date(ctx.target, s, hashes))}
        if not stale:
            ctx.log(f"{', '.join(self.body['services'])} already run(s) what the compose file describes: not recreated")
            return
        services = list(stale)  # only what is out of date; the others already run the file
        containers = {s: container_for(ctx.target, s, required=False) for s in services}
        ids = {s: getattr(c, "id", None) for s, c in containers.items()}
        engine_before = {s: engine_limits_shown(c) for s, c in containers.items() if c is not None}
        ctx.record_undo({"services": services, "containers_before": ids, "engine_before": engine_before,
                         "timeout": self.timeout})
        for s, reasons in stale.items():
            ctx.log(f"{s}: {'; '.join(reasons)}")
        recreate(ctx.target, services, self.timeout, ctx.log)
        problems = [p for s in services for p in engine_mismatches(ctx.target, s)]
        if problems:
            raise StepFailed("the engine did not apply the compose file: " + "; ".join(problems), host=ctx.target.name)
        ctx.log("docker inspect agrees with the compose file")

    @classmethod
    def compare(cls, target: Target, undo: dict[str, Any], body: dict[str, Any] | None = None) -> Comparison:
        """Before and after a recreate alike, each container runs what the compose file says
        (whether the file is as before or as planned is the file steps' part)."""
        differences = []
        for s in undo["services"]:
            c = container_for(target, s, required=False)
            if c is None:
                differences.append(Difference(f"{s} container", "missing", "running", planned_by="the compose file"))
                continue
            if c.status != "running":
                differences.append(Difference(f"{s} container", c.status, "running", planned_by="the compose file"))
            before = (undo.get("engine_before") or {}).get(s) or {}
            for d in engine_differences(target, s, c):
                d.before = before.get(d.what.removeprefix(f"{s} "))
                differences.append(d)
        same = not differences
        return Comparison(before=same, after=same, differences=differences)

    @classmethod
    def rollback(cls, target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
        recreate(target, undo["services"], float(undo.get("timeout", 60)), log)
        problems = [p for s in undo["services"] for p in engine_mismatches(target, s)]
        if problems:
            raise HostError("after the rollback recreate: " + "; ".join(problems))

    @classmethod
    def manual_undo(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        p = compose_project(target)
        return [p.shell(p.up(undo["services"], recreate=True))]
