"""Probe `stats`: a service's container memory (% of its limit) and CPU against thresholds."""
from __future__ import annotations

import time
from typing import Any

from orchestrator.engine import container_for, require_service
from orchestrator.metrics import format_reading, format_thresholds, judge, reading, threshold_issues
from orchestrator.probes.base import Probe, ProbeResult

class StatsProbe(Probe):
    kind = "stats"
    default_consecutive = 1

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        return threshold_issues(body.get("warn"), body.get("fail"))

    def describe(self) -> str:
        return f"stats: {self.body['service']} fails at {format_thresholds(self.body['fail'])}"

    def preflight(self) -> None:
        require_service(self.target, self.body["service"])

    def measure(self) -> ProbeResult:
        container = container_for(self.target, self.body["service"])
        needs_cpu = "cpu_percent" in {**(self.body.get("warn") or {}), **self.body["fail"]}
        first = None
        if needs_cpu:
            _, first = reading(container)
            time.sleep(1)  # CPU % needs two samples of our own
        metrics, _ = reading(container, first)
        verdict = judge(metrics, self.body.get("warn"), self.body["fail"])
        return ProbeResult(verdict, round(metrics["memory_percent"], 2), format_reading(metrics))
