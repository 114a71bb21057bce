"""Readings and their verdicts: container stats against a plan's thresholds, percentiles.

Shared by the watch step, the stats and http probes and `rollout watch`.
"""
from __future__ import annotations

from typing import Any

from orchestrator.engine import cpu_percent, stats_sample

PASS, WARN, FAIL = "pass", "warn", "fail"
MIB = 1024 * 1024


def threshold_issues(warn: dict | None, fail: dict | None) -> list[tuple[list[Any], str]]:
    """warn must be below fail for every metric both name (shared by watch and stats)."""
    out = []
    for metric, limit in (fail or {}).items():
        w = (warn or {}).get(metric)
        if isinstance(w, (int, float)) and isinstance(limit, (int, float)) and w >= limit:
            out.append((["warn", metric], f"warn {w} must be below fail {limit}"))
    return out


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


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)] if ordered else 0.0


def watch_thresholds(steps: list[Any]) -> dict[str, tuple[dict | None, dict]]:
    """service → (warn, fail) of a plan's watch steps (`rollout watch` judges live readings by them)."""
    return {s.body["service"]: (s.body.get("warn"), s.body["fail"]) for s in steps if s.kind == "watch"}
