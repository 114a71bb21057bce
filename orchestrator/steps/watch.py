"""Step `watch`: a soak — sample `docker stats` of a service for a window against thresholds."""
from __future__ import annotations

import time
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator.changes import Change
from orchestrator.engine import container_for, require_service
from orchestrator.errors import StepFailed
from orchestrator.hosts import Target
from orchestrator.metrics import FAIL, MIB, WARN, format_reading, format_thresholds, judge, p95, reading, threshold_issues
from orchestrator.units import format_duration, parse_duration
from orchestrator.steps.base import Step, StepContext


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    """min/avg/p95/max of memory used during the soak, against the limit."""
    used = [s["memory_used"] for s in samples]
    if not used:
        return {"samples": 0}
    return {
        "samples": len(used),
        "limit_mib": round(samples[-1]["memory_limit"] / MIB, 1),
        "min_mib": round(min(used) / MIB, 1),
        "avg_mib": round(sum(used) / len(used) / MIB, 1),
        "p95_mib": round(p95(used) / MIB, 1),
        "max_mib": round(max(used) / MIB, 1),
        "max_percent": round(max(s["memory_percent"] for s in samples), 1),
    }


class WatchStep(Step):
    kind = "watch"

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = threshold_issues(body.get("warn"), body.get("fail"))
        try:
            if parse_duration(body["every"]) > parse_duration(body["for"]):
                issues.append((["every"], f"every {body['every']} is longer than the window for {body['for']}"))
        except (KeyError, ValueError):
            pass
        return issues

    def window(self) -> tuple[float, float]:
        options = self.options
        length = parse_duration(self.body["for"])
        every = parse_duration(self.body["every"])
        if options.soak is not None:
            length = options.soak
            every = options.soak_every or min(every, max(1.0, length / 10))
        elif options.soak_every:
            every = options.soak_every
        return length, every

    def describe(self) -> str:
        length, every = self.window()
        parts = [f"soak {self.body['service']} for {format_duration(length)}, every {format_duration(every)}"]
        if self.body.get("warn"):
            parts.append("warn at " + format_thresholds(self.body["warn"]))
        parts.append("fail at " + format_thresholds(self.body["fail"])
                     + f" for {self.body.get('consecutive', 3)} consecutive samples")
        return "; ".join(parts)

    def diff(self, target: Target) -> list[Change]:
        require_service(target, self.body["service"])  # a typo is bad input, not a failed soak
        return [self.change("watch", self.body["service"], self.describe(), mutates=False)]

    def apply(self, ctx: StepContext) -> None:
        length, every = self.window()
        needed = int(self.body.get("consecutive", 3))
        service = self.body["service"]
        total = int(length // every) + 1
        samples: list[dict[str, float]] = []
        state = {"breaches": 0, "previous": None, "warned": 0}
        ctx.log(self.describe())

        def sample() -> str | None:
            container = container_for(ctx.target, service)
            if container.status != "running":
                raise StepFailed(f"{service} is {container.status} during the soak", host=ctx.target.name)
            metrics, state["previous"] = reading(container, state["previous"])
            samples.append(metrics)
            verdict = judge(metrics, self.body.get("warn"), self.body["fail"])
            state["breaches"] = state["breaches"] + 1 if verdict == FAIL else 0
            state["warned"] += verdict == WARN
            ctx.log(f"soak {service} {len(samples)}/{total}: {format_reading(metrics)}"
                    + (f" — {verdict.upper()} ({state['breaches']}/{needed})" if verdict == FAIL else
                       " — WARN" if verdict == WARN else ""))
            return "breach" if state["breaches"] >= needed else None

        started = time.monotonic()
        outcome = Retrying(stop=stop_after_delay(max(0.0, length - every / 2)), wait=wait_fixed(every),
                           retry=retry_if_result(lambda r: r is None),
                           retry_error_callback=lambda s: s.outcome.result())(sample)
        summary = summarize(samples)
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["warnings"] = state["warned"]
        ctx.journal.write("soak", step=ctx.step_index, service=service, summary=summary, outcome=outcome or "ok")
        ctx.log(f"soak summary {service}: memory used/limit min {summary.get('min_mib')} / avg {summary.get('avg_mib')} / "
                f"p95 {summary.get('p95_mib')} / max {summary.get('max_mib')} of {summary.get('limit_mib')} MiB "
                f"({summary.get('samples')} samples, {state['warned']} warnings)")
        if outcome == "breach":
            raise StepFailed(f"{service} breached {format_thresholds(self.body['fail'])} for {needed} consecutive samples "
                             f"(max {summary.get('max_percent')} %)", host=ctx.target.name)
