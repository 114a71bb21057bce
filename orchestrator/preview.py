"""What a plan would do on a host, read-only: every step's diff and the probes (`rollout diff`).

A preview's fingerprint is what a saved plan keeps, so `apply FILE` can tell that a host moved on.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from orchestrator.changes import Change
from orchestrator.errors import InputError
from orchestrator.hosts import Target
from orchestrator.plan import Plan, ProbeSpec, StepSpec
from orchestrator.probes import make_probe
from orchestrator.steps import STEPS
from orchestrator.steps.base import RunOptions, Step


@dataclass
class HostPreview:
    """Read-only view of what a plan would do on one host."""

    target: Target
    steps: list[Step]
    changes: list[Change]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.changes)


def fingerprint(changes: list[Change]) -> str:
    data = json.dumps([[c.step, c.kind, c.target, c.before, c.after] for c in changes], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


@contextmanager
def located(plan: Plan, spec: StepSpec | ProbeSpec) -> Iterator[None]:
    """Errors found on the host (a {{ host.data.KEY }} it lacks, an unknown service) name the
    plan's file, line and the step or probe key they come from."""
    try:
        yield
    except InputError as exc:
        raise InputError(f"{spec.location(plan.path, exc.key)}: {exc}", key=exc.key) from exc


def build_steps(plan: Plan, target: Target, options: RunOptions) -> list[Step]:
    steps = []
    for spec in plan.steps:
        with located(plan, spec):
            steps.append(STEPS[spec.kind](spec, target.data, options))
    return steps


def step_changes(plan: Plan, steps: list[Step], target: Target) -> list[Change]:
    """Every step's diff, each seeing what the earlier steps of the plan would change."""
    changes: list[Change] = []
    for step in steps:
        with located(plan, step.spec):
            changes += step.diff_in_plan(target, changes)
    return changes


def preview(plan: Plan, target: Target, options: RunOptions) -> HostPreview:
    """Every step's diff and the probes, reading the host only."""
    steps = build_steps(plan, target, options)
    changes = step_changes(plan, steps, target)
    for i, spec in enumerate(plan.validate):
        with located(plan, spec):
            probe = make_probe(spec.kind, spec.body, target)
            probe.preflight()
        changes.append(Change(step=f"validate/{i}", kind="probe", target=spec.kind, summary=probe.describe(), mutates=False))
    return HostPreview(target, steps, changes)


def previews_json(previews: list[HostPreview]) -> dict[str, Any]:
    """Per host: the fingerprint and every change (the `hosts` of `diff --json` and of a saved plan)."""
    return {pv.target.name: {"fingerprint": pv.fingerprint, "changes": [c.to_json() for c in pv.changes]}
            for pv in previews}
