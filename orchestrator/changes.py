"""What a step would change: data the CLI prints and `diff -o` saves."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Change:
    """One thing a step would change (or check) on a host.

    kind: file | engine | service | image | redis | probe | watch
    before/after: comparable, already-redacted values; the saved-plan
    fingerprint is computed from them, so a host that moved on is noticed.
    """

    step: str
    kind: str
    target: str
    summary: str
    before: Any = None
    after: Any = None
    diff: str = ""
    mutates: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
