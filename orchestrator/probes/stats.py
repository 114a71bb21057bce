"""Probe `stats`: a service's container memory (% of its limit) and CPU against thresholds."""
from __future__ import annotations

import time
from typing import Any

from orchestrator.engine import container_for, cpu_percent, require_service, stats_sample
from orchestrator.metrics import threshold_issues
from orchestrator.probes.base import FAIL, PASS, WARN, Probe, ProbeResult

MIB = 1024 * 1024


def judge(metrics: dict[str, float], warn: dict, fail: dict) -> str:
    """PASS, WARN or FAIL for one reading against thresholds (≥ breaches)."""
    if any(metrics.get(k, 0) >= v for k, v in (fail or {}).items()):
        return FAIL
    if any(metrics.get(k, 0) >= v for k, v in (warn or {}).items()):
        return WARN
    return PASS


def reading(container, previous=None) -> tuple[dict[str, float], Any]:
    sample = stats_sample(container)
    metrics = {"memory_percent": sample.memory_percent, "memory_used": sample.memory_used,
               "memory_limit": sample.memory_limit}
    if previous is not None:
        metrics["cpu_percent"] = cpu_percent(previous, sample)
    return metrics, sample


def format_thresholds(thresholds: dict[str, float]) -> str:
    """{'memory_percent': 90} → 'memory_percent ≥ 90'."""
    return ", ".join(f"{k} ≥ {v}" for k, v in thresholds.items())


def format_reading(m: dict[str, float]) -> str:
    text = f"memory {m['memory_used'] / MIB:.0f}/{m['memory_limit'] / MIB:.0f} MiB ({m['memory_percent']:.1f} %)"
    if "cpu_percent" in m:
        text += f", cpu {m['cpu_percent']:.1f} %"
    return text


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
