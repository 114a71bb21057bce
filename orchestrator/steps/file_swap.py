"""Step `file_swap` (not implemented yet)."""
from __future__ import annotations

from orchestrator.steps.base import Step


class FileSwapStep(Step):
    kind = "file_swap"
