"""The typed model of a plan: `Plan`, its `StepSpec`s and `ProbeSpec`s, and `PlanIssue`s.

Loading a plan file (YAML, schema, each kind's checks) is `orchestrator.planfile`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError


@dataclass
class PlanIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlanInvalid(InputError):
    def __init__(self, issues: list[PlanIssue]):
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass
class StepSpec:
    index: int
    id: str
    kind: str
    body: dict[str, Any]
    line: int | None
    # Line of each key of the body, so a host-level error about `destination`
    # can point at plans/x.yaml:LINE: steps/N/KIND/destination.
    key_lines: dict[str, int] = field(default_factory=dict)

    def location(self, file: str | Path, key: str | None = None) -> str:
        """`FILE:LINE: steps/N/KIND[/KEY]` for messages about this step (or one of its keys)."""
        if key is not None and key in self.key_lines:
            return f"{file}:{self.key_lines[key]}: steps/{self.index}/{self.kind}/{key}"
        return f"{file}:{self.line}: steps/{self.index}/{self.kind}" if self.line else f"{file}: steps/{self.index}/{self.kind}"


@dataclass
class ProbeSpec:
    kind: str
    body: dict[str, Any]
    where: str  # e.g. "validate/0"
    line: int | None = None  # of the probe's kind key
    key_lines: dict[str, int] = field(default_factory=dict)

    def location(self, file: str | Path, key: str | None = None) -> str:
        """`FILE:LINE: validate/N/KIND[/KEY]` for host-level errors about this probe (or one of its keys)."""
        if key is not None and self.key_lines.get(key):
            return f"{file}:{self.key_lines[key]}: {self.where}/{self.kind}/{key}"
        return f"{file}:{self.line}: {self.where}/{self.kind}" if self.line else f"{file}: {self.where}/{self.kind}"


@dataclass
class Plan:
    name: str
    version: int
    title: str
    hosts: str
    steps: list[StepSpec]
    validate: list[ProbeSpec]
    on_failure: str
    path: Path
    text: str
    sha256: str = field(default="")

    @property
    def ref(self) -> str:
        return f"{self.name} v{self.version} ({self.sha256[:12]})"
