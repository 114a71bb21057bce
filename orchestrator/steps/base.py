"""The contract every step kind implements (one module per kind)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from orchestrator import known_secrets
from orchestrator.changes import Change
from orchestrator.compose import ComposeProject
from orchestrator.hosts import Target
from orchestrator.journal import Journal
from orchestrator.plan import StepSpec
from orchestrator.template import render


@dataclass
class RunOptions:
    """Command-line overrides the executor passes down."""

    soak: float | None = None  # seconds; overrides every watch step's `for`
    soak_every: float | None = None


@dataclass
class StepContext:
    """What `apply` gets: the host, its journal and a logger."""

    target: Target
    journal: Journal
    step_index: int
    step_id: str
    kind: str
    log: Callable[[str], None]
    undo_stage: int = 0  # the step kind's default stage for its undo records

    def record_undo(self, undo: dict[str, Any], *, stage: int | None = None) -> None:
        """Journal how to undo the mutation that follows. Call BEFORE mutating.

        A step may journal several records (one per setting it changes, say); each is undone
        on its own, idempotently, by its kind's `rollback`. The rollback undoes records by
        `stage` (lower first; default: the kind's `undo_stage`), newest first within a stage.
        """
        self.journal.write("undo", step=self.step_index, id=self.step_id, kind=self.kind, undo=undo,
                           n=self.journal.next_undo_number(),
                           stage=self.undo_stage if stage is None else stage)


@dataclass
class Difference:
    """One live value that is neither as the plan leaves it nor as the run found it."""

    what: str  # e.g. "app memory limit"
    live: str
    planned: str | None = None
    before: str | None = None
    planned_by: str = "plan"  # who asks for `planned`: the plan, or the compose file

    def describe(self) -> str:
        parts = [f"{self.what} is {self.live}"]
        if self.planned is not None:
            parts.append(f"{self.planned_by} says {self.planned}")
        if self.before is not None:
            parts.append(f"before was {self.before}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "live": self.live, "planned": self.planned, "before": self.before,
                "planned_by": self.planned_by}


@dataclass
class Comparison:
    """The live host against one undo record (`Step.compare`)."""

    before: bool | None = None  # live equals the state the run found (what its undo restores); None: cannot tell
    after: bool | None = None  # live equals the state the run left; None: cannot tell
    differences: list[Difference] = field(default_factory=list)


class Step:
    kind: ClassVar[str]
    # Default `stage` of this kind's undo records: a higher stage is undone later
    # (a recreate, stage 1, must see the files the other undos restore).
    undo_stage: ClassVar[int] = 0

    def __init__(self, spec: StepSpec, host_data: dict[str, Any], options: RunOptions | None = None):
        self.spec = spec
        self.options = options or RunOptions()
        self.id = spec.id
        self.body: dict[str, Any] = render(spec.body, host_data)
        known_secrets.harvest(self.body)  # a rendered secret is hidden in every output from now on
        self.host_data = host_data

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        """Semantic checks beyond the schema: [(sub-path, message)]."""
        return []

    def diff(self, target: Target) -> list[Change]:
        """Read-only: what apply would change. [] (or only `mutates=False` notes) means nothing
        to do, and then `apply` is a no-op."""
        raise NotImplementedError

    def diff_in_plan(self, target: Target, earlier: list[Change]) -> list[Change]:
        """Read-only: what apply would change once the plan's earlier steps have made their
        changes `earlier` (which the live host does not show yet). Default: `diff`, for kinds
        whose outcome does not depend on earlier steps."""
        return self.diff(target)

    def apply(self, ctx: StepContext) -> None:
        """Mutate the host; `ctx.record_undo(...)` first."""
        raise NotImplementedError

    @classmethod
    def rollback(cls, target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
        """Idempotent; uses the journal's undo record only."""

    @classmethod
    def conflict(cls, target: Target, undo: dict[str, Any]) -> str | None:
        """Read-only: why undoing now would clobber a later change (None when it is safe)."""
        return None

    @classmethod
    def compare(cls, target: Target, undo: dict[str, Any], body: dict[str, Any] | None = None) -> Comparison:
        """Read-only: the live host against an undo record — still as the run found it (`before`),
        as the run left it (`after`) — and the values that are neither. `body` is the step's
        rendered plan body when known (for the planned values). Default: cannot tell."""
        return Comparison()

    @classmethod
    def manual_undo(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        """Shell commands an operator can run to finish this undo by hand."""
        return []

    def change(self, kind: str, target: str, summary: str, **kw: Any) -> Change:
        return Change(step=self.id, kind=kind, target=target, summary=summary, **kw)


def compose_project(target: Target) -> ComposeProject:
    d = target.data
    return ComposeProject(d["project_dir"], d["compose_file"], d["compose_project"])
