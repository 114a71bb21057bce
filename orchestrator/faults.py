"""Test-only fault hooks: kill the process at a named journal point.

Inert unless ROLLOUT_FAULT is set, e.g. ROLLOUT_FAULT="after:undo:1-compose_limits"
kills `rollout` with SIGKILL right after that record is fsync'd, which is how
the crash tests stop a run at an exact point.
"""
from __future__ import annotations

import os
import signal


def hit(point: str) -> None:
    wanted = os.environ.get("ROLLOUT_FAULT")
    if wanted and wanted == point:
        os.kill(os.getpid(), signal.SIGKILL)
