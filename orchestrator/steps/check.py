"""Step `check`: run one probe at this point of the plan (e.g. an image budget before a recreate)."""
from __future__ import annotations

from orchestrator.changes import Change
from orchestrator.errors import StepFailed
from orchestrator.hosts import Target
from orchestrator.steps.base import Step, StepContext


class CheckStep(Step):
    kind = "check"

    def probe(self, target: Target):
        from orchestrator.probes import make_probe

        kind, body = next(iter(self.spec.body.items()))
        return make_probe(kind, body, target)

    def diff(self, target: Target) -> list[Change]:
        probe = self.probe(target)
        probe.preflight()
        return [self.change("probe", self.id, probe.describe(), mutates=False)]

    def apply(self, ctx: StepContext) -> None:
        probe = self.probe(ctx.target)
        result = probe.run()
        ctx.journal.write("probe", step=ctx.step_index, probe=probe.kind, result=result.to_json())
        ctx.log(f"{probe.describe()} → {result.verdict.upper()}: {result.detail}")
        if not result.ok:
            raise StepFailed(f"check failed: {probe.describe()}: {result.detail}", host=ctx.target.name)
