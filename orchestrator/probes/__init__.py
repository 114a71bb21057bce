"""Probe kinds, by name. Adding a kind: one module here, one schema $def, its tests."""
from __future__ import annotations

from orchestrator.probes.base import Probe, ProbeResult
from orchestrator.probes.http import HttpProbe
from orchestrator.probes.image_path_size import ImagePathSizeProbe
from orchestrator.probes.redis_info import RedisInfoProbe
from orchestrator.probes.stats import StatsProbe

PROBES: dict[str, type[Probe]] = {
    cls.kind: cls for cls in (HttpProbe, StatsProbe, ImagePathSizeProbe, RedisInfoProbe)
}


def make_probe(kind: str, body: dict, target) -> Probe:
    return PROBES[kind](body, target)
