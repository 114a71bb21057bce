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
from orchestrator.steps.base import Step, StepContext, compose_project


def _compose_text(target: Target) -> tuple[str, str]:
    path = target.path(target.data["compose_file"])
    raw = target.read_file(path)
    if raw is None:
        raise InputError(f"{target.name}: compose file {path} does not exist", key="compose_file")
    return raw.decode("utf-8"), path


def engine_mismatches(target: Target, service: str) -> list[str]:
    """Where the running container differs from what the compose file declares."""
    text, path = _compose_text(target)
    want = composefile.declared(text, f"{target.name}:{path}", service)
    live = engine_limits(container_for(target, service))
    problems = []
    checks = [
        ("memory limit", want["limits"].get("memory"), parse_size, live["memory"]),
        ("cpus limit (NanoCpus)", want["limits"].get("cpus"), lambda v: int(round(float(v) * 1e9)), live["nano_cpus"]),
        ("memory reservation", want["reservations"].get("memory"), parse_size, live["memory_reservation"]),
    ]
    for label, declared, convert, actual in checks:
        if declared is not None and convert(str(declared)) != actual:
            problems.append(f"{service}: {label} is {actual}, the compose file says {declared}")
    for key, value in want["environment"].items():
        if value is None or "$" in value:
            continue  # interpolated by compose from the shell/.env: not comparable here
        if live["environment"].get(key) != value:
            problems.append(f"{service}: environment {key} differs from the compose file")
    return problems


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
                raise StepFailed(f"{target.name}: {s} is unhealthy after the recreate: {_last_health_log(c)}")
            if health not in (None, "healthy"):
                waiting.append(f"{s} ({health})")
        return waiting

    # Poll until nothing is waiting; after `timeout` the last answer is returned.
    waiting = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.5), retry=retry_if_result(bool),
                       retry_error_callback=lambda state: state.outcome.result())(not_ready)
    if waiting:
        raise StepFailed(f"{target.name}: not running/healthy within {timeout:g}s: {', '.join(waiting)}")
    log(f"recreated {', '.join(services)}")


class RecreateStep(Step):
    kind = "recreate"
    rollback_last = True

    @property
    def timeout(self) -> float:
        return parse_duration(self.body.get("healthy_within", "60s"))

    def diff(self, target: Target) -> list[Change]:
        text, path = _compose_text(target)
        changes = []
        for s in self.body["services"]:
            composefile.service(composefile.load(text, f"{target.name}:{path}"), s, f"{target.name}:{path}")
            c = container_for(target, s, required=False)
            current = f"container {c.name} ({c.short_id})" if c else "no container yet"
            changes.append(self.change("service", s, f"recreate {s} only ({current}); then check docker inspect against the compose file",
                                       before=c.id if c else None))
        return changes

    def apply(self, ctx: StepContext) -> None:
        services = self.body["services"]
        ids = {s: getattr(container_for(ctx.target, s, required=False), "id", None) for s in services}
        ctx.record_undo({"services": services, "containers_before": ids, "timeout": self.timeout})
        recreate(ctx.target, services, self.timeout, ctx.log)
        problems = [p for s in services for p in engine_mismatches(ctx.target, s)]
        if problems:
            raise StepFailed(f"{ctx.target.name}: the engine did not apply the compose file: " + "; ".join(problems))
        ctx.log("docker inspect agrees with the compose file")

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
