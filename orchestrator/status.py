"""What is live on a host, per plan: read from the host and judged against the journal.

For each plan that has runs on a host, one state:

  unfinished   a run left steps applied and did not end: `rollout rollback PLAN` (or it is running)
  in_effect    every step's diff against the live host is empty
  not_applied  the live host is as the journal says it was before the plan (rolled back, or
               never changed by it)
  drifted      neither: each value that is neither as planned nor as before is named
  unknown      the host could not be read, or the run's plan copy is gone (the detail says why)

The plan compared is the copy a run journaled (runs/<id>/plan.yaml), so the answer does not
depend on plans/ having changed since. Read-only: nothing on the host is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator import journal as jr
from orchestrator import lock
from orchestrator.changes import Change
from orchestrator.errors import RolloutError, without_host
from orchestrator.executor import plan_of_run
from orchestrator.preview import build_steps, located
from orchestrator.hosts import Target
from orchestrator.plan import Plan
from orchestrator.steps import STEPS
from orchestrator.steps.base import Comparison, Difference, RunOptions

IN_EFFECT, NOT_APPLIED, DRIFTED, UNFINISHED, UNKNOWN = "in_effect", "not_applied", "drifted", "unfinished", "unknown"
# How `rollout status` shows each state: label and colour.
LABELS = {IN_EFFECT: ("APPLIED — in effect", "green"), NOT_APPLIED: ("NOT APPLIED", None),
          DRIFTED: ("DRIFTED", "yellow"), UNFINISHED: ("UNFINISHED", "red"), UNKNOWN: ("UNKNOWN", "red")}


@dataclass
class PlanStatus:
    host: str
    plan: str
    state: str
    detail: str
    run: dict[str, Any]  # the newest run of the plan: id, version, sha256, by, started, outcome
    still_applied: list[str] = field(default_factory=list)  # run ids, oldest first
    differences: list[Difference] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # planned keys the engine never sees

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "plan": self.plan, "state": self.state, "detail": self.detail,
                **self.run, "still_applied": self.still_applied,
                "drift": [d.to_json() for d in self.differences], "ignored": self.ignored}


def host_status(target: Target) -> list[PlanStatus]:
    """One status per plan that has runs on the host, in the order the plans first ran."""
    by_plan: dict[str, list[jr.RunRecord]] = {}
    for run_id in jr.list_runs(target):
        run = jr.read_run(target, run_id)
        by_plan.setdefault(run.start.get("plan") or run_id.split("-", 1)[1].rsplit("-", 1)[0], []).append(run)
    return [plan_status(target, name, runs) for name, runs in by_plan.items()]


def _run_info(run: jr.RunRecord) -> dict[str, Any]:
    start = run.start
    return {"run": run.run_id, "version": start.get("version"), "sha256": (start.get("sha256") or "")[:12],
            "by": start.get("user"), "started": start.get("at"), "outcome": run.outcome}


def plan_status(target: Target, name: str, runs: list[jr.RunRecord]) -> PlanStatus:
    """The state of one plan on the host; `runs` oldest first."""
    newest = runs[-1]
    applied = [r for r in runs if r.pending_undo]
    status = PlanStatus(target.name, name, UNKNOWN, "", _run_info(newest), [r.run_id for r in applied])
    stuck = [r for r in applied if r.outcome not in (jr.SUCCEEDED, jr.ROLLED_BACK, jr.IN_EFFECT)]
    if stuck:
        run = stuck[-1]
        status.state = UNFINISHED
        held = lock.read_lock(target)
        if held and held.get("run_id") == run.run_id and not lock.is_stale(target, held):
            status.detail = f"run {run.run_id} is in progress (lock {lock.describe(target, held, False)})"
        else:
            status.detail = (f"run {run.run_id} is {run.outcome.replace('_', ' ')} with {len(run.pending_undo)} "
                             f"step(s) applied: run `rollout rollback {name}`")
        return status
    reference = applied[-1] if applied else newest
    plan = plan_of_run(target, reference) or plan_of_run(target, newest)
    if plan is None:
        status.detail = f"the plan copy of run {reference.run_id} is missing or unreadable: cannot compare"
        return status
    try:
        _judge(target, plan, runs, applied, status)
    except RolloutError as exc:
        status.state, status.detail = UNKNOWN, f"cannot read the host: {without_host(exc, target.name)}"
    return status


def _records(runs: list[jr.RunRecord]) -> dict[str, dict[str, Any]]:
    """Per step id, the undo record of the oldest of `runs` that has one."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        for record in run.pending_undo if run.outcome != jr.ROLLED_BACK else _all_undo(run):
            out.setdefault(record["id"], record)
    return out


def _all_undo(run: jr.RunRecord) -> list[dict[str, Any]]:
    return [r for r in run.records if r["t"] == "undo"]


def _judge(target: Target, plan: Plan, runs: list[jr.RunRecord], applied: list[jr.RunRecord],
           status: PlanStatus) -> None:
    steps = build_steps(plan, target, RunOptions())
    bodies = {step.id: step.body for step in steps}
    live_records = {}  # per step id, the newest still-applied record: what the plan left, if in effect
    for run in applied:
        for record in run.pending_undo:
            live_records[record["id"]] = record
    comparisons: dict[int, Comparison] = {}

    def compare(record: dict[str, Any]) -> Comparison:
        if id(record) not in comparisons:
            comparisons[id(record)] = STEPS[record["kind"]].compare(target, record["undo"], bodies.get(record["id"]))
        return comparisons[id(record)]

    # Every step's diff, each seeing what the earlier ones would still change. A step whose diff is
    # never empty (an image build) counts as in effect while its run's change is live.
    earlier: list[Change] = []
    pending: dict[str, list[Change]] = {}
    for step in steps:
        with located(plan, step.spec):
            changes = step.diff_in_plan(target, earlier)
        if any(c.mutates for c in changes) and step.id in live_records and compare(live_records[step.id]).after:
            changes = [c for c in changes if not c.mutates]
        status.ignored += [c.extra["key"] for c in changes if c.kind == "ignored"]
        if any(c.mutates for c in changes):
            pending[step.id] = [c for c in changes if c.mutates]
        earlier += changes
    if not pending:
        status.state = IN_EFFECT
        by = f"run {applied[-1].run_id}" if applied else "no run of it (the host already was as planned)"
        status.detail = f"every step matches the live host; applied by {by}"
        return

    # The before-state: what a rollback restores (the oldest still-applied run of each step); once
    # nothing is applied, what any run that changed something had found (rolled back to before it).
    changed = [r for r in runs if _all_undo(r)]
    if not changed:
        status.state = NOT_APPLIED
        status.detail = "no run of it changed this host; " + _pending_text(pending)
        return
    candidates = [applied] if applied else [[run] for run in reversed(changed[-10:])]
    for group in candidates:
        verdicts = {sid: compare(record) for sid, record in _records(group).items()}
        if all(v.before is not False for v in verdicts.values()):
            status.state = NOT_APPLIED
            runs_text = ", ".join(run.run_id for run in group)
            status.detail = (f"the live host is as it was before run {runs_text}, which the journal still lists as "
                             "applied (undone by hand?)" if applied
                             else f"rolled back: the live host is as it was before run {runs_text}")
            return
    # Drifted: named against what a rollback would restore, or what the plan's first run found.
    before = _records(applied) if applied else _records([changed[0]])
    verdicts = {sid: compare(record) for sid, record in before.items()}
    status.state = DRIFTED
    for sid, verdict in verdicts.items():
        if not verdict.before and not verdict.after:
            status.differences += verdict.differences or [Difference(f"step {sid}", "neither as planned nor as before")]
    at_plan = [sid for sid, v in verdicts.items() if v.after]
    at_before = [sid for sid, v in verdicts.items() if v.before]
    if not status.differences:  # each part is as planned or as before, but not all the same way
        status.differences = [Difference(f"step {sid}", "as planned") for sid in at_plan]
        status.differences += [Difference(f"step {sid}", "as before the plan") for sid in at_before]
    status.differences += [Difference(f"step {sid}", "differs from the plan: " + "; ".join(c.summary for c in changes))
                           for sid, changes in pending.items() if sid not in before]
    status.detail = "; ".join(d.describe() for d in status.differences)


def _pending_text(pending: dict[str, list[Change]]) -> str:
    return "to do: " + "; ".join(f"{sid}: {', '.join(c.summary for c in changes)}" for sid, changes in pending.items())
