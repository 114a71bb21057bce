"""lock → journal → steps → probes → rollback. The only code that mutates hosts.

Steps decide *what* to change; they do it through the `StepContext` this
module hands them, after journaling the undo. Rollback reads the journal
only, so it works after a crash of the process that applied the plan.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from orchestrator import journal as jr
from orchestrator import lock
from orchestrator.changes import Change
from orchestrator.diff import redact_text, redact_yaml
from orchestrator.errors import (
    EXIT_BAD_INPUT, EXIT_EMERGENCY, EXIT_OK, EXIT_VALIDATION_FAILED, InputError, LockHeld,
    RolloutError, StepFailed, UnfinishedRun,
)
from orchestrator.hosts import Connection, Inventory, Target
from orchestrator.plan import Plan, ProbeSpec, StepSpec, load_plan_bytes
from orchestrator.probes import make_probe
from orchestrator.steps import STEPS
from orchestrator.steps.base import RunOptions, Step, StepContext
from orchestrator.steps.files import RestoresFiles, conflict_at, restored_sha

Log = Callable[[str, str], None]  # (host, message)

SAVED_FORMAT = "rollout-saved-plan/1"


@dataclass
class HostPreview:
    """Read-only view of what a plan would do on one host."""

    target: Target
    steps: list[Step]
    changes: list[Change]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.changes)


@dataclass
class HostOutcome:
    host: str
    run_id: str | None
    exit_code: int
    message: str
    emergency: list[str] = field(default_factory=list)


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


def undo_order(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first; kinds that must see the restored state (recreates) after all others."""
    newest_first = list(reversed(pending))
    return ([r for r in newest_first if not STEPS[r["kind"]].rollback_last]
            + [r for r in newest_first if STEPS[r["kind"]].rollback_last])


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


def plan_of_run(target: Target, run: jr.RunRecord) -> Plan | None:
    """The plan exactly as the run applied it (a copy lives in the run directory)."""
    raw = target.read_file(f"{jr.run_dir(target, run.run_id)}/plan.yaml")
    if raw is None:
        return None
    try:
        return load_plan_bytes(raw, Path(f"{run.run_id}/plan.yaml"), f"{target.name}:{run.run_id}/plan.yaml")
    except InputError:
        return None


def still_applied(run: jr.RunRecord) -> bool:
    """The run left something applied, or never ended (a rollback closes it)."""
    return bool(run.pending_undo) or run.outcome == jr.INTERRUPTED


def unfinished_runs(target: Target) -> list[jr.RunRecord]:
    """Runs on the host that left something applied and did not end cleanly."""
    out = []
    for run_id in jr.list_runs(target):
        run = jr.read_run(target, run_id)
        if run.outcome not in (jr.SUCCEEDED, jr.ROLLED_BACK) and run.pending_undo:
            out.append(run)
    return out


class Executor:
    def __init__(self, inventory: Inventory, log: Log, options: RunOptions | None = None):
        self.inventory = inventory
        self.log = log
        self.options = options or RunOptions()

    # -- apply ----------------------------------------------------------------
    def apply(self, plan: Plan, previews: list[HostPreview]) -> list[HostOutcome]:
        """Apply on each host in turn; stop at the first host that fails."""
        outcomes = []
        for pv in previews:
            outcome = self._apply_host(plan, pv)
            outcomes.append(outcome)
            if outcome.exit_code != EXIT_OK:
                rest = [p.target.name for p in previews[len(outcomes):]]
                if rest:
                    self.log(pv.target.name, f"stopping the rollout; not touched: {', '.join(rest)}")
                break
        return outcomes

    def _apply_host(self, plan: Plan, pv: HostPreview) -> HostOutcome:
        target = pv.target
        say = lambda msg: self.log(target.name, msg)  # noqa: E731
        run_id = jr.new_run_id(plan.name)
        started = time.monotonic()
        try:
            lock.acquire(target, run_id, plan.name)
        except LockHeld as exc:
            return HostOutcome(target.name, None, exc.exit_code, str(exc).removeprefix(f"{target.name}: "))
        try:
            stuck = unfinished_runs(target)
            if stuck:
                last = stuck[-1]
                name = last.start.get("plan", "?")
                raise UnfinishedRun(
                    f"{target.name}: run {last.run_id} of plan {name} did not finish ({last.outcome}) and left "
                    f"{len(last.pending_undo)} step(s) applied; run `rollout rollback {name}` first"
                )
            in_effect = not any(c.mutates for c in pv.changes)
            journal = jr.Journal(target, run_id)
            journal.write("start", run_id=run_id, plan=plan.name, version=plan.version, sha256=plan.sha256,
                          title=plan.title, user=jr.who(), host=target.name,
                          steps=[{"id": s.id, "kind": s.kind} for s in pv.steps])
            # The copy lets a rollback after a crash re-run the probes; literal secrets stay out of it.
            target.write_file_atomic(f"{journal.dir}/plan.yaml", redact_yaml(plan.text).encode(), mode=0o600)
            if in_effect:
                # Nothing to do: no step, probe or soak runs; the run is journaled so `history` tells the truth.
                journal.write("end", outcome=jr.IN_EFFECT)
                return HostOutcome(target.name, run_id, EXIT_OK,
                                   f"{plan.ref} is already in effect: every step's diff is empty; nothing changed "
                                   f"(run {run_id} journaled, nothing to undo)")
            say(f"run {run_id}: {plan.ref}")
            try:
                self._run_steps(plan, pv, journal, say)
                self._run_probes(plan, target, journal, say, "validate")
            except Exception as failure:  # noqa: BLE001 — any failure must lead to a rollback
                return self._after_failure(plan, target, journal, failure, say)
            journal.write("end", outcome=jr.SUCCEEDED)
            return HostOutcome(target.name, run_id, EXIT_OK, f"{plan.ref} applied in {time.monotonic() - started:.1f}s")
        except RolloutError as exc:
            return HostOutcome(target.name, run_id, exc.exit_code, str(exc).removeprefix(f"{target.name}: "))
        finally:
            lock.release(target, run_id)

    def _run_steps(self, plan: Plan, pv: HostPreview, journal: jr.Journal, say: Callable[[str], None]) -> None:
        for i, step in enumerate(pv.steps):
            started = time.monotonic()
            journal.write("step", step=i, id=step.id, kind=step.kind)
            say(f"step {i + 1}/{len(pv.steps)} {step.id} …")
            ctx = StepContext(pv.target, journal, i, step.id, step.kind, say)
            step.apply(ctx)
            seconds = round(time.monotonic() - started, 2)
            journal.write("done", step=i, seconds=seconds)
            say(f"step {i + 1}/{len(pv.steps)} {step.id} done in {seconds:.1f}s")

    def _run_probes(self, plan: Plan, target: Target, journal: jr.Journal | None,
                    say: Callable[[str], None], phase: str) -> list[str]:
        """Run the plan's validate probes; raise on the first failure (phase 'validate')
        or return the failures (phase 'verify', after a rollback)."""
        failures = []
        for i, spec in enumerate(plan.validate):
            probe = make_probe(spec.kind, spec.body, target)
            started = time.monotonic()
            result = probe.run()
            if journal:
                journal.write("probe", phase=phase, index=i, probe=spec.kind, result=result.to_json())
            say(f"{phase} {probe.describe()} → {result.verdict.upper()} ({result.detail}; "
                f"{result.attempts} attempt(s), {time.monotonic() - started:.1f}s)")
            if not result.ok:
                message = f"{spec.where} {probe.describe()}: {result.detail}"
                if phase == "validate":
                    raise StepFailed(f"{target.name}: probe failed: {message}")
                failures.append(message)
        return failures

    def _after_failure(self, plan: Plan, target: Target, journal: jr.Journal, failure: BaseException,
                       say: Callable[[str], None]) -> HostOutcome:
        reason = (str(failure) or type(failure).__name__).removeprefix(f"{target.name}: ")
        say(f"FAILED: {reason}")
        journal.write("failed", reason=reason[:4000])
        if plan.on_failure == "stop":
            journal.write("end", outcome=jr.STOPPED)
            run = jr.read_run(target, journal.run_id)
            return HostOutcome(target.name, journal.run_id, EXIT_EMERGENCY,
                               f"{reason}; on_failure is stop: the host is left as it is",
                               emergency=self._emergency_lines(target, run, plan.name, "on_failure: stop"))
        say("rolling back …")
        started = time.monotonic()
        outcome = self.rollback_run(target, journal.run_id, plan)
        outcome.message = f"{reason}; {outcome.message} in {time.monotonic() - started:.1f}s"
        if outcome.exit_code == EXIT_OK:
            outcome.exit_code = EXIT_VALIDATION_FAILED
        return outcome

    # -- rollback -------------------------------------------------------------
    def rollback_run(self, target: Target, run_id: str, plan: Plan | None = None) -> HostOutcome:
        """Undo what the journal of `run_id` says is applied, then verify with the plan's probes.

        EXIT_OK: undone and verified (or nothing to undo); EXIT_EMERGENCY otherwise.
        """
        say = lambda msg: self.log(target.name, msg)  # noqa: E731
        run = jr.read_run(target, run_id)
        plan_name = run.start.get("plan", "?")
        if plan is None:
            plan = plan_of_run(target, run)
        pending = run.pending_undo
        journal = jr.Journal(target, run_id)
        if not pending and run.outcome in (jr.ROLLED_BACK, jr.IN_EFFECT):
            done = "is already rolled back" if run.outcome == jr.ROLLED_BACK else "found the plan in effect and changed nothing"
            return HostOutcome(target.name, run_id, EXIT_OK, f"run {run_id} {done}; nothing to do")
        journal.write("rollback_start", user=jr.who(), pending=[r["step"] for r in pending])
        order = undo_order(pending)
        for record in order:
            cls = STEPS[record["kind"]]
            say(f"undo {record['id']} ({record['kind']}) …")
            try:
                cls.rollback(target, record["undo"], say)
            except Exception as exc:  # noqa: BLE001 — report exactly what is left
                journal.write("rollback_end", complete=False, error=str(exc)[:4000])
                journal.write("end", outcome=jr.ROLLBACK_FAILED)
                run = jr.read_run(target, run_id)
                return HostOutcome(target.name, run_id, EXIT_EMERGENCY,
                                   f"rollback of {record['id']} failed: {exc}",
                                   emergency=self._emergency_lines(target, run, plan_name, str(exc)))
            journal.write("undone", step=record["step"], id=record["id"])
        failures = self._run_probes(plan, target, journal, say, "verify") if plan else []
        if failures:
            journal.write("rollback_end", complete=True, verified=False, failures=failures)
            journal.write("end", outcome=jr.ROLLBACK_FAILED)
            run = jr.read_run(target, run_id)
            return HostOutcome(target.name, run_id, EXIT_EMERGENCY,
                               "rollback done but the restored state fails its probes",
                               emergency=self._emergency_lines(target, run, plan_name, "; ".join(failures)))
        journal.write("rollback_end", complete=True, verified=plan is not None)
        journal.write("end", outcome=jr.ROLLED_BACK)
        if plan is None:
            return HostOutcome(target.name, run_id, EXIT_OK,
                               f"rolled back ({len(order)} step(s) undone) but NOT verified: the run's plan copy is "
                               "missing or unreadable, so there were no probes to run")
        return HostOutcome(target.name, run_id, EXIT_OK, f"rolled back and verified ({len(order)} step(s) undone)")

    def _emergency_lines(self, target: Target, run: jr.RunRecord, plan_name: str, reason: str) -> list[str]:
        lines = [f"EMERGENCY on {target.name}: run {run.run_id} of plan {plan_name} is NOT fully undone",
                 f"  cause: {reason}"]
        pending = run.pending_undo
        if pending:
            lines.append("  still applied (undo newest first):")
            for record in reversed(pending):
                lines.append(f"    - {record['id']} ({record['kind']})")
            lines.append("  manual commands:")
            for record in undo_order(pending):
                for cmd in STEPS[record["kind"]].manual_undo(target, record["undo"]):
                    lines.append(f"    {cmd}")
        else:
            lines.append("  every step is undone, but the restored state fails the plan's probes: inspect the service")
        lines.append(f"  once the cause is fixed: rollout rollback {plan_name} -i {self.inventory.path}")
        return lines

    @staticmethod
    def _newest_run(target: Target, plan_name: str | None, run_id: str | None) -> str | None:
        if run_id:
            if run_id not in jr.list_runs(target):
                raise InputError(f"{target.name}: no run {run_id} (see `rollout history`)")
            return run_id
        runs = jr.list_runs(target, plan_name)
        return runs[-1] if runs else None

    def runs_to_undo(self, target: Target, plan_name: str | None, run_id: str | None) -> list[jr.RunRecord]:
        """What a rollback undoes on this host, newest first: the run `run_id`, or every run of
        the plan that is still applied — back to the state before the oldest of them."""
        if run_id:
            return [jr.read_run(target, self._newest_run(target, None, run_id))]
        runs = [jr.read_run(target, rid) for rid in jr.list_runs(target, plan_name)]
        return [run for run in reversed(runs) if still_applied(run)]

    def rollback_latest(self, target: Target, plan_name: str | None, run_id: str | None,
                        plan: Plan | None = None) -> HostOutcome:
        """Emergency rollback on one host of every still-applied run of a plan, newest first
        (or of the run `run_id`). Refused, nothing changed, when an undo would clobber a later
        change (another plan's run or a hand edit).

        `plan` (the current plan file) verifies a run's rollback when it is exactly the plan
        the run applied; otherwise the run's own copy does.
        """
        runs = self.runs_to_undo(target, plan_name, run_id)
        if not runs:
            newest = self._newest_run(target, plan_name, None)
            if newest is None:
                return HostOutcome(target.name, None, EXIT_OK, f"no run of {plan_name} on this host; nothing to do")
            outcome = jr.read_run(target, newest).outcome
            state = {jr.ROLLED_BACK: "already rolled back", jr.IN_EFFECT: "an apply that found it in effect"}.get(
                outcome, f"{outcome} and left nothing applied")
            return HostOutcome(target.name, newest, EXIT_OK,
                               f"no run of {plan_name} is still applied here (the newest, {newest}, is {state}); "
                               "nothing to do")
        ids = [run.run_id for run in runs]
        name = plan_name or runs[0].start.get("plan", "?")
        held = lock.read_lock(target)
        if held and not (held.get("run_id") in ids and lock.is_stale(held)):
            raise LockHeld(f"{target.name}: another run holds the lock: {lock.describe(held)}")
        if held:
            self.log(target.name, f"taking over the stale lock of crashed run {held.get('run_id')}")
            lock.release(target)
        lock.acquire(target, ids[0], name)
        try:
            conflicts = self._conflicts(target, runs)
            if conflicts:
                hint = (f"\n  still-applied run(s) of {name} here, newest first: {', '.join(ids)}; to undo one run "
                        "alone (its changes only, whatever came later): `rollout rollback --run ID`")
                raise InputError(f"{target.name}: not rolling back {'run ' + ids[0] if len(ids) == 1 else name}; "
                                 "nothing changed:\n  " + "\n  ".join(conflicts) + hint)
            undone: list[HostOutcome] = []
            for run in runs:
                same_plan = plan is not None and plan.sha256 == run.start.get("sha256")
                outcome = self.rollback_run(target, run.run_id, plan if same_plan else None)
                if outcome.exit_code != EXIT_OK:
                    left = ids[len(undone) + 1:]
                    if left:
                        outcome.emergency.append(f"  older runs of {name} not undone yet: {', '.join(left)}")
                    return outcome
                undone.append(outcome)
            if len(undone) == 1:
                return undone[0]
            return HostOutcome(target.name, ids[-1], EXIT_OK,
                               f"{len(undone)} runs of {name} undone, newest first: "
                               + "; ".join(f"{o.run_id}: {o.message}" for o in undone))
        finally:
            lock.release(target, ids[0])

    def _conflicts(self, target: Target, runs: list[jr.RunRecord]) -> list[str]:
        """Why undoing `runs` (newest first) would clobber a later change. A file that a newer
        run of the batch restores first is judged as that undo will leave it, not as it is now."""
        will_be: dict[str, str | None] = {}
        out = []
        for run in runs:
            for record in run.pending_undo:
                cls, undo = STEPS[record["kind"]], record["undo"]
                if issubclass(cls, RestoresFiles) and undo.get("path") in will_be:
                    why = conflict_at(undo, will_be[undo["path"]])
                else:
                    why = cls.conflict(target, undo)
                if why:
                    later = self._later_writers(target, run, undo.get("path"))
                    out.append(f"run {run.run_id} ({record['id']}): {why}" + (f"; since changed by {later}" if later else ""))
            for record in run.pending_undo:
                if issubclass(STEPS[record["kind"]], RestoresFiles) and record["undo"].get("path"):
                    will_be[record["undo"]["path"]] = restored_sha(record["undo"])
        return out

    @staticmethod
    def _later_writers(target: Target, run: jr.RunRecord, path: str | None) -> str:
        """The still-applied later runs of other plans that wrote `path`: roll those back first."""
        if not path:
            return ""
        names = []
        for rid in jr.list_runs(target):
            later = jr.read_run(target, rid) if rid > run.run_id else None
            if later is None or later.start.get("plan") == run.start.get("plan"):
                continue
            if any(r["undo"].get("path") == path for r in later.pending_undo):
                plan = later.start.get("plan", "?")
                names.append(f"run {rid} of {plan} (roll back {plan} first)")
        return ", ".join(names)

    # -- connections ------------------------------------------------------------
    def connect(self, group: str, limit: tuple[str, ...] = ()) -> Connection:
        return Connection(self.inventory, self.inventory.hosts_in(group, limit))


def exit_code(outcomes: list[HostOutcome]) -> int:
    """The worst outcome decides: 3 > 4 > 1 > 2 > 0."""
    rank = {EXIT_EMERGENCY: 5, 4: 4, EXIT_VALIDATION_FAILED: 3, EXIT_BAD_INPUT: 2, EXIT_OK: 0}
    return max((o.exit_code for o in outcomes), key=lambda c: rank.get(c, 1), default=EXIT_OK)


# -- saved plans (diff -o / apply FILE) ------------------------------------------
def previews_json(previews: list[HostPreview]) -> dict[str, Any]:
    """Per host: the fingerprint and every change (the `hosts` of `diff --json` and of a saved plan)."""
    return {pv.target.name: {"fingerprint": pv.fingerprint, "changes": [c.to_json() for c in pv.changes]}
            for pv in previews}


def save_previews(plan: Plan, inventory: Inventory, previews: list[HostPreview], options: RunOptions) -> dict[str, Any]:
    """A saved plan carries the plan's exact text, so it must hold no literal secret."""
    secret_lines = [i for i, (a, b) in enumerate(zip(plan.text.split("\n"), redact_text(plan.text).split("\n")), 1) if a != b]
    if secret_lines:
        raise InputError(f"{plan.path}:{secret_lines[0]}: the plan holds a literal secret value; a saved plan would store it. "
                         "Put it in the inventory and write {{ host.data.KEY }} instead")
    return {
        "format": SAVED_FORMAT,
        "created": jr.now(),
        "by": jr.who(),
        "plan": {"name": plan.name, "version": plan.version, "sha256": plan.sha256, "path": str(plan.path),
                 "text": plan.text},
        "inventory": str(inventory.path.resolve()),
        "options": {"soak": options.soak, "soak_every": options.soak_every},
        "hosts": previews_json(previews),
    }


def load_saved(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a saved plan ({exc})") from exc
    if not isinstance(saved, dict) or saved.get("format") != SAVED_FORMAT:
        raise InputError(f"{path}: not a saved plan (format must be {SAVED_FORMAT}; make one with `rollout diff PLAN -o FILE`)")
    text = saved["plan"]["text"].encode()
    if hashlib.sha256(text).hexdigest() != saved["plan"]["sha256"]:
        raise InputError(f"{path}: the embedded plan does not match its checksum (edited by hand?)")
    return saved


def moved_on(saved_host: dict[str, Any], pv: HostPreview) -> list[str]:
    """What changed on a host since its saved preview was made."""
    if saved_host["fingerprint"] == pv.fingerprint:
        return []
    old = {(c["step"], c["kind"], c["target"]): c for c in saved_host["changes"]}
    new = {(c.step, c.kind, c.target): c for c in pv.changes}
    out = []
    for key in sorted(set(old) | set(new)):
        o, n = old.get(key), new.get(key)
        if o is None:
            out.append(f"{key[0]} {key[2]}: now also changes ({n.summary})")
        elif n is None:
            out.append(f"{key[0]} {key[2]}: no longer needs a change (already as planned?)")
        elif o["before"] != n.before or o["after"] != n.after:
            out.append(f"{key[0]} {key[2]}: live state differs from when the plan was saved ({n.summary})")
    return out or ["the host's state differs from when the plan was saved"]
