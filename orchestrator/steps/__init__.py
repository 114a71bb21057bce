"""Step kinds, by name. Adding a kind: one module here, one schema $def, its tests."""
from __future__ import annotations

from orchestrator.steps.base import Step
from orchestrator.steps.check import CheckStep
from orchestrator.steps.compose_limits import ComposeLimitsStep
from orchestrator.steps.file_swap import FileSwapStep
from orchestrator.steps.image_build import ImageBuildStep
from orchestrator.steps.recreate import RecreateStep
from orchestrator.steps.redis_config import RedisConfigStep
from orchestrator.steps.watch import WatchStep

STEPS: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (ComposeLimitsStep, RecreateStep, WatchStep, CheckStep, FileSwapStep, ImageBuildStep, RedisConfigStep)
}
