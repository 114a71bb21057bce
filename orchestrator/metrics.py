"""Judging readings against a plan's thresholds (shared by the watch step and the stats probe)."""
from __future__ import annotations

from typing import Any


def threshold_issues(warn: dict | None, fail: dict | None) -> list[tuple[list[Any], str]]:
    """warn must be below fail for every metric both name (shared by watch and stats)."""
    out = []
    for metric, limit in (fail or {}).items():
        w = (warn or {}).get(metric)
        if isinstance(w, (int, float)) and isinstance(limit, (int, float)) and w >= limit:
            out.append((["warn", metric], f"warn {w} must be below fail {limit}"))
    return out
