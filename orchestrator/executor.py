"""One host at a time: lock → journal → steps → probes → rollback.

Steps mutate hosts (through their target) only inside `apply` and `rollback`,
and only the executor calls those, inside the host's lock and after the
journal's `start`; a step journals each undo record before the change it
undoes. Rollback reads the journal only, so it works after a crash of the
process that applied the plan.
"""
from __future__ import annotations

import shlex
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator import journal as jr
from orchestrator import lock
from orchestrator.diff import redact_yaml
from orchestrator.errors import (
    EXIT_BAD_INPUT, EXIT_EMERGENCY, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_VALIDATION_FAILED,
    InputError, LockHeld,
    RolloutError, StepFailed, UnfinishedRun, without_host,
)
from orchestrator.hosts import Target
from orchestrator.inventory import Inventory
from orchestrator.plan import Plan
from orchestrator.planfile import load_plan_bytes
from orchestrator.probes import make_probe
from orchestrator.steps import STEPS
from orchestrator.preview import HostPreview, preview
from orchestrator.steps.base import RunOptions, StepContext
from orchestrator.steps.files import RestoresFiles, conflict_at, restored_sha

Log = Callable[[str, str], None]  # (host, message)


@dataclass
class HostOutcome:
    host: str
    run_id: str | None
    exit_code: int
    message: str
    emergency: list[str] = field(default_factory=list)
    traceback: str = ""  # of an internal error, shown with --debug


def undo_order(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By the records' own `stage` (lower first: recreates, stage 1, see the restored files),
    newest first within a stage."""
    newest_first = list(reversed(pending))
    return sorted(newest_first, key=lambda r: r.get("stage", STEPS[r["kind"]].undo_stage))


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
    def apply(self, plan: Plan, previews: list[HostPreview],
              before_start: Callable[[HostPreview], list[str]] | None = None) -> list[HostOutcome]:
        """Apply on each host in turn; stop at the first host that fails.

        `before_start(fresh_preview)` runs on each host under its lock, right before
        it starts; what it returns (e.g. how a saved plan's host moved on) refuses
        that host with exit 2, nothing changed on it."""
        outcomes = []
        for pv in previews:
            try:
                outcome = self._apply_host(plan, pv, before_start)
            except KeyboardInterrupt:  # before this host's first change (after it, _apply_host rolls back)
                outcome = HostOutcome(pv.target.name, None, EXIT_INTERRUPTED,
                                      "interrupted (Ctrl-C) before anything changed on this host")
            outcomes.append(outcome)
            if outcome.exit_code != EXIT_OK:
                rest = [p.target.name for p in previews[len(outcomes):]]
                if rest:
                    self.log(pv.target.name, f"stopping the rollout; not touched: {', '.join(rest)}")
                break
        return outcomes

    def _apply_host(self, plan: Plan, pv: HostPreview,
                    before_start: Callable[[HostPreview], list[str]] | None = None) -> HostOutcome:
        target = pv.target
        say = lambda msg: self.log(target.name, msg)  # noqa: E731
        run_id = jr.new_run_id(plan.name)
        started = time.monotonic()
        try:
            lock.acquire(target, run_id, plan.name)
            stuck = unfinished_runs(target)
            if stuck:
                last = stuck[-1]
                name = last.start.get("plan", "?")
                raise UnfinishedRun(
                    f"run {last.run_id} of plan {name} did not finish ({last.outcome}) and left "
                    f"{len(last.pending_undo)} step(s) applied; run `rollout rollback {name}` first",
                    host=target.name,
                )
            if before_start is not None:
                pv = preview(plan, target, self.options)  # the host as it is now, under the lock
                moved = before_start(pv)
                if moved:
                    raise InputError("moved on since the plan was saved; nothing changed on it; "
                                     "make a new one with `rollout diff`:\n  " + "\n  ".join(moved), host=target.name)
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
                journal.write("end", outcome=jr.SUCCEEDED)
            except KeyboardInterrupt as interrupt:
                if not journal.run().pending_undo:  # nothing was changed: nothing to undo
                    journal.note("failed", reason="interrupted (Ctrl-C) before anything changed")
                    journal.note("end", outcome=jr.ROLLED_BACK)
                    return HostOutcome(target.name, run_id, EXIT_INTERRUPTED,
                                       "interrupted (Ctrl-C) before anything changed on this host")
                return self._after_failure(plan, target, journal, interrupt, say)
            except Exception as failure:  # noqa: BLE001 — any failure must lead to a rollback
                return self._after_failure(plan, target, journal, failure, say)
            return HostOutcome(target.name, run_id, EXIT_OK, f"{plan.ref} applied in {time.monotonic() - started:.1f}s")
        except RolloutError as exc:
            return HostOutcome(target.name, run_id, exc.exit_code, without_host(exc, target.name))
        except Exception as exc:  # noqa: BLE001 — a bug or a connector failure, before the first change
            return HostOutcome(target.name, run_id, EXIT_INTERNAL,
                               f"internal error: {type(exc).__name__}: {exc}; nothing changed on this host",
                               traceback=traceback.format_exc())
        finally:
            try:
                lock.release(target, run_id)
            except Exception as exc:  # noqa: BLE001 — the outcome above is the truth; say the lock is left
                say(f"could not release the lock {lock.lock_path(target)}: {exc}; `rollout unlock` releases it")

    def _run_steps(self, plan: Plan, pv: HostPreview, journal: jr.Journal, say: Callable[[str], None]) -> None:
        for i, step in enumerate(pv.steps):
            started = time.monotonic()
            journal.write("step", step=i, id=step.id, kind=step.kind)
            say(f"step {i + 1}/{len(pv.steps)} {step.id} …")
            ctx = StepContext(pv.target, journal, i, step.id, step.kind, say, step.undo_stage)
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
            if journal and phase == "verify":
                journal.note("probe", phase=phase, index=i, probe=spec.kind, result=result.to_json())
            elif journal:
                journal.write("probe", phase=phase, index=i, probe=spec.kind, result=result.to_json())
            say(f"{phase} {probe.describe()} → {result.verdict.upper()} ({result.detail}; "
                f"{result.attempts} attempt(s), {time.monotonic() - started:.1f}s)")
            if not result.ok:
                message = f"{spec.where} {probe.describe()}: {result.detail}"
                if phase == "validate":
                    raise StepFailed(f"probe failed: {message}", host=target.name)
                failures.append(message)
        return failures

    def _after_failure(self, plan: Plan, target: Target, journal: jr.Journal, failure: BaseException,
                       say: Callable[[str], None]) -> HostOutcome:
        if isinstance(failure, KeyboardInterrupt):
            reason = "interrupted (Ctrl-C) while applying"
        else:
            reason = without_host(failure, target.name) or type(failure).__name__
        say(f"FAILED: {reason}")
        # From here on the journal is written if it can be; the undo runs from memory either way.
        journal.note("failed", reason=reason[:4000])
        if plan.on_failure == "stop":
            journal.note("end", outcome=jr.STOPPED)
            return HostOutcome(target.name, journal.run_id, EXIT_EMERGENCY,
                               f"{reason}; on_failure is stop: the host is left as it is",
                               emergency=self._emergency_lines(target, journal.run(), plan.name, "on_failure: stop"))
        say("rolling back …")
        started = time.monotonic()
        outcome = self.rollback_run(target, journal.run_id, plan, held=journal)
        outcome.message = f"{reason}; {outcome.message} in {time.monotonic() - started:.1f}s"
        if outcome.exit_code == EXIT_OK:
            outcome.exit_code = EXIT_VALIDATION_FAILED
        return outcome

    # -- rollback -------------------------------------------------------------
    def rollback_run(self, target: Target, run_id: str, plan: Plan | None = None,
                     held: jr.Journal | None = None) -> HostOutcome:
        """Undo what the journal of `run_id` says is applied, then verify with the plan's probes.

        `held` is the journal of the run this process is applying: its records in memory
        are the truth, so the undo goes on when the host's journal can no longer be
        written (or read). EXIT_OK: undone and verified (or nothing to undo);
        EXIT_EMERGENCY otherwise.
        """
        if held is not None:
            journal = held
        else:
            journal = jr.Journal(target, run_id)
            journal.records = jr.read_run(target, run_id).records
        run = journal.run()
        plan_name = run.start.get("plan", "?")
        if plan is None:
            plan = plan_of_run(target, run)
        if not run.pending_undo and run.outcome in (jr.ROLLED_BACK, jr.IN_EFFECT):
            done = "is already rolled back" if run.outcome == jr.ROLLED_BACK else "found the plan in effect and changed nothing"
            return HostOutcome(target.name, run_id, EXIT_OK, f"run {run_id} {done}; nothing to do")
        try:
            outcome = self._undo_and_verify(target, journal, plan, plan_name)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 — a rollback ends in a verdict, never a traceback
            cause = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            journal.note("rollback_end", complete=False, error=cause[:4000])
            journal.note("end", outcome=jr.ROLLBACK_FAILED)
            outcome = HostOutcome(target.name, run_id, EXIT_EMERGENCY, f"rollback stopped: {cause}",
                                  emergency=self._emergency_lines(target, journal.run(), plan_name, cause))
        if journal.write_error:
            outcome.emergency += self._stale_journal_lines(target, journal, plan_name)
        return outcome

    def _undo_and_verify(self, target: Target, journal: jr.Journal, plan: Plan | None, plan_name: str) -> HostOutcome:
        say = lambda msg: self.log(target.name, msg)  # noqa: E731
        run_id = journal.run_id
        pending = journal.run().pending_undo
        journal.note("rollback_start", user=jr.who(), pending=[r["step"] for r in pending])
        order = undo_order(pending)
        for record in order:
            cls = STEPS[record["kind"]]
            say(f"undo {record['id']} ({record['kind']}) …")
            try:
                cls.rollback(target, record["undo"], say)
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 — report exactly what is left
                cause = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc)
                journal.note("rollback_end", complete=False, error=cause[:4000])
                journal.note("end", outcome=jr.ROLLBACK_FAILED)
                return HostOutcome(target.name, run_id, EXIT_EMERGENCY,
                                   f"rollback of {record['id']} failed: {cause}",
                                   emergency=self._emergency_lines(target, journal.run(), plan_name, cause))
            journal.note("undone", step=record["step"], id=record["id"], **({"n": record["n"]} if "n" in record else {}))
        failures = self._run_probes(plan, target, journal, say, "verify") if plan else []
        if failures:
            journal.note("rollback_end", complete=True, verified=False, failures=failures)
            journal.note("end", outcome=jr.ROLLBACK_FAILED)
            return HostOutcome(target.name, run_id, EXIT_EMERGENCY,
                               "rollback done but the restored state fails its probes",
                               emergency=self._emergency_lines(target, journal.run(), plan_name, "; ".join(failures)))
        journal.note("rollback_end", complete=True, verified=plan is not None)
        journal.note("end", outcome=jr.ROLLED_BACK)
        if plan is None:
            return HostOutcome(target.name, run_id, EXIT_OK,
                               f"rolled back ({len(order)} step(s) undone) but NOT verified: the run's plan copy is "
                               "missing or unreadable, so there were no probes to run")
        return HostOutcome(target.name, run_id, EXIT_OK, f"rolled back and verified ({len(order)} step(s) undone)")

    def _stale_journal_lines(self, target: Target, journal: jr.Journal, plan_name: str) -> list[str]:
        """The journal on the host could not record (all of) the rollback: say so, and how to catch it up."""
        return [f"JOURNAL NOT UPDATED on {target.name}: {journal.path} could not be written ({journal.write_error});",
                "  the rollback above ran from this process's memory, and the journal on the host does not record it.",
                "  once the host can be written again (free space, restore the directory), run:",
                f"    rollout rollback {plan_name} -i {self.inventory.path}",
                "  it repeats the undo from the journal (each undo is idempotent) and records it"]

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
        lines.append(f"  once the cause is fixed: rollout rollback {shlex.quote(plan_name)} -i {shlex.quote(str(self.inventory.path))}")
        return lines

    @staticmethod
    def _newest_run(target: Target, plan_name: str | None, run_id: str | None) -> str | None:
        if run_id:
            if run_id not in jr.list_runs(target):
                raise InputError(f"no run {run_id} (see `rollout history`)", host=target.name)
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

    def rollback_hosts(self, targets: list[Target], plan_name: str | None, run_id: str | None,
                       plan: Plan | None = None) -> list[HostOutcome]:
        """`rollback_latest` on each host in turn; an error before a host's undo started is that
        host's outcome (after it started, `rollback_run` reports what is left), Ctrl-C stops here."""
        outcomes = []
        for target in targets:
            try:
                outcomes.append(self.rollback_latest(target, plan_name, run_id, plan))
            except RolloutError as exc:
                outcomes.append(HostOutcome(target.name, run_id, exc.exit_code, without_host(exc, target.name)))
            except KeyboardInterrupt:
                outcomes.append(HostOutcome(target.name, run_id, EXIT_INTERRUPTED,
                                            "interrupted (Ctrl-C) before anything changed on this host"))
                break
            except Exception as exc:  # noqa: BLE001 — a bug or a connector failure, reported with its traceback
                outcomes.append(HostOutcome(target.name, run_id, EXIT_INTERNAL,
                                            f"internal error: {type(exc).__name__}: {exc}; nothing changed on this host",
                                            traceback=traceback.format_exc()))
        return outcomes

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
            self._release_stale_lock_of(target, plan_name)
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
        if held:
            stale = lock.is_stale(target, held)
            if not (held.get("run_id") in ids and stale):
                raise LockHeld(f"another run holds the lock: {lock.describe(target, held, stale)}", host=target.name)
            lock.take_over(target, held, ids[0], name)
            self.log(target.name, f"taking over the stale lock of crashed run {held.get('run_id')}: done")
        else:
            lock.acquire(target, ids[0], name)
        try:
            conflicts = self._conflicts(target, runs)
            if conflicts:
                hint = (f"\n  still-applied run(s) of {name} here, newest first: {', '.join(ids)}; to undo one run "
                        "alone (its changes only, whatever came later): `rollout rollback --run ID`")
                raise InputError(f"not rolling back {'run ' + ids[0] if len(ids) == 1 else name}; "
                                 "nothing changed:\n  " + "\n  ".join(conflicts) + hint, host=target.name)
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

    def _release_stale_lock_of(self, target: Target, plan_name: str | None) -> None:
        """A rollback killed after its last journal record leaves nothing to undo but its lock:
        a stale lock of a run of this plan is released (a live or foreign one is left alone)."""
        held = lock.read_lock(target)
        if held and held.get("run_id") in jr.list_runs(target, plan_name) and lock.is_stale(target, held):
            lock.take_over(target, held, held["run_id"], held.get("plan") or "?")
            lock.release(target, held["run_id"])
            self.log(target.name, f"released the stale lock of crashed run {held['run_id']} (nothing was left to undo)")

    def _conflicts(self, target: Target, runs: list[jr.RunRecord]) -> list[str]:
        """Why undoing `runs` (newest first) would clobber a later change. A file that a newer
        run of the batch restores first is judged as that undo will leave it, not as it is now."""
        will_be: dict[str, str | None] = {}
        out = []
        for run in runs:
            for record in run.pending_undo:
                cls, undo = STEPS[record["kind"]], record["undo"]
                if issubclass(cls, RestoresFiles) and undo.get("path") in will_be:
                    why = conflict_at(target, undo, will_be[undo["path"]])
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



def exit_code(outcomes: list[HostOutcome]) -> int:
    """The worst outcome decides: 3 > 4 > 1 > 5 > 130 > 2 > 0."""
    rank = {EXIT_EMERGENCY: 7, EXIT_LOCKED: 6, EXIT_VALIDATION_FAILED: 5, EXIT_INTERNAL: 4, EXIT_INTERRUPTED: 3,
            EXIT_BAD_INPUT: 2, EXIT_OK: 0}
    return max((o.exit_code for o in outcomes), key=lambda c: rank.get(c, 1), default=EXIT_OK)
