"""Probe `image_path_size` (not implemented yet)."""
from __future__ import annotations

from orchestrator.probes.base import Probe


class ImagePathSizeProbe(Probe):
    kind = "image_path_size"
