"""Probe `redis_info` (not implemented yet)."""
from __future__ import annotations

from orchestrator.probes.base import Probe


class RedisInfoProbe(Probe):
    kind = "redis_info"
