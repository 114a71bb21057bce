"""Durations and sizes as plans write them: `30s`, `4h`, `512M`, `1G` (binary units, as compose and docker)."""
from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_duration(text: str) -> float:
    """'30s' → 30.0 seconds."""
    m = re.fullmatch(r"(-?[0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 30s, 5m or 4h)")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_size(text: str) -> int:
    """'512M' / '50MB' / '1GiB' → bytes (binary units, as compose and docker do)."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT])(?:i?B)?", text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a size (use 512M or 1G)")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2)])


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
