"""Step `image_build` (not implemented yet)."""
from __future__ import annotations

from orchestrator.steps.base import Step


class ImageBuildStep(Step):
    kind = "image_build"
