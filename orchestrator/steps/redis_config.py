"""Step `redis_config` (not implemented yet)."""
from __future__ import annotations

from orchestrator.steps.base import Step


class RedisConfigStep(Step):
    kind = "redis_config"
