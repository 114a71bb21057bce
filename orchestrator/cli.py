"""The `rollout` command line: parse, call, print, exit code. Nothing else."""
from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum, frame) -> None:
    # Ctrl-C while Python imports (seconds on a busy machine): nothing ran yet. _run replaces this.
    sys.stderr.write("error: interrupted (Ctrl-C); nothing changed\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_while_starting)

import json  # noqa: E402
import time
from pathlib import Path
from typing import Any

import click

from orchestrator import known_secrets  # noqa: E402
from orchestrator.errors import (  # noqa: E402
    EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, InputError, RolloutError,
)

EXIT_CODES_HELP = """\b
Exit codes:
    0  done
    1  a validation probe failed; the rollback completed and was verified
    2  bad input; nothing changed
    3  EMERGENCY: rollback failed or incomplete (what is left is printed)
    4  another run holds the lock
    5  internal error; nothing changed (`rollout --debug ...` shows the traceback)
  130  interrupted (Ctrl-C) before anything changed"""


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


class _Printer:
    """Prefixes host output with the elapsed time, so timings are visible."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, host: str, message: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:7.1f}s] {host}: {message}")


def _project_root(plan_path: Path | None = None) -> Path:
    if (Path.cwd() / "inventories").is_dir():
        return Path.cwd()
    if plan_path is not None:
        return plan_path.resolve().parent.parent
    return Path.cwd()


def _inventory(path: str | None, plan_path: Path | None = None, *, demo_set_up: bool = True):
    from orchestrator.hosts import load_inventory, prepare_imports_for

    if path is None:
        default = _project_root(plan_path) / "inventories" / "demo.py"
        if not default.exists():
            raise InputError(f"no inventory given and no default at {default}: pass -i INVENTORY")
        path = str(default)
    inventory = load_inventory(path)
    prepare_imports_for(inventory)
    if demo_set_up:
        from orchestrator.demo_paths import check_set_up

        check_set_up(inventory.host_data, path)
    return inventory


def _load_plan(name: str):
    from orchestrator.planfile import load_plan, resolve_plan_path

    path = resolve_plan_path(name)
    return load_plan(path, display=str(path))


def _parse_soak(soak: str | None, every: str | None):
    from orchestrator.units import parse_duration
    from orchestrator.steps.base import RunOptions

    try:
        opts = RunOptions(soak=parse_duration(soak) if soak else None,
                          soak_every=parse_duration(every) if every else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if (opts.soak is not None and opts.soak <= 0) or (opts.soak_every is not None and opts.soak_every <= 0):
        raise click.BadParameter("must be greater than zero")
    return opts


def _print_previews(plan, previews, as_json: bool, color: bool) -> None:
    from orchestrator.diff import colorize
    from orchestrator.executor import previews_json

    if as_json:
        click.echo(json.dumps({
            "plan": {"name": plan.name, "version": plan.version, "sha256": plan.sha256, "title": plan.title},
            "hosts": previews_json(previews),
        }, indent=2, default=str))
        return
    click.secho(f"plan {plan.ref}: {plan.title}", bold=True)
    for pv in previews:
        mutating = [c for c in pv.changes if c.mutates]
        click.secho(f"\n== {pv.target.name}: {len(mutating)} change(s)", bold=True)
        if not mutating:
            click.echo("   nothing to change: the host is already as planned")
        for c in pv.changes:
            marker = "~" if c.mutates else "!" if c.kind == "ignored" else "?"
            click.echo(f" {marker} [{c.step}] {c.summary}")
            if c.diff:
                click.echo("\n".join("     " + line for line in (colorize(c.diff) if color else c.diff).splitlines()))


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        _fail("refusing to change hosts without confirmation: no terminal to ask on; pass --yes")
    if not click.confirm(question, default=False):
        _fail("cancelled; nothing changed")


def _report(outcomes) -> int:
    from orchestrator.executor import exit_code

    click.echo("")
    for o in outcomes:
        color = {0: "green", 1: "yellow", 3: "red", 4: "magenta"}.get(o.exit_code, "red")
        click.secho(f"{o.host}: {o.message}", fg=color, err=o.exit_code != EXIT_OK)
        for line in o.emergency:
            click.secho(line, fg="red", bold=True, err=True)
        if o.traceback:
            click.echo(o.traceback.rstrip() if _debug() else "  (run again with `rollout --debug ...` for the traceback)",
                       err=True)
    return exit_code(outcomes)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EXIT_CODES_HELP)
@click.version_option(package_name="rollout")
@click.option("--debug", is_flag=True, help="on an internal error (exit 5), print the Python traceback")
def main(debug: bool) -> None:
    """Declarative, journaled rollouts for docker-compose production stacks.

    A plan (plans/NAME.yaml) says what changes; `rollout diff` shows it exactly,
    `rollout apply` applies it with backups and a write-ahead journal on each host,
    watches docker stats and probes, and rolls everything back by itself when a
    probe fails. `rollout rollback` undoes a run from the journal, even after a crash.

    \b
    Typical session:
      rollout validate                     check every plan in plans/
      rollout diff day1                    what would change, on which host
      rollout apply day1 --soak 2m         apply with a short soak window
      rollout status                       what is applied where
      rollout rollback day1                undo the newest run of day1
    """
    known_secrets.guard_streams()  # every line printed from here on is scrubbed of known secret values


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


@main.command()
@click.argument("plans", nargs=-1)
def validate(plans: tuple[str, ...]) -> None:
    """Check plan files (schema and semantics); no host is touched.

    PLANS are names (day1 → plans/day1.yaml) or paths; default: every plans/*.yaml.
    Exits 0 when all are valid, 2 otherwise, listing every error as FILE:LINE: PATH: MESSAGE.
    """
    _run(lambda: _validate(plans))


def _validate(plans: tuple[str, ...]) -> int:
    from orchestrator.plan import PlanInvalid
    from orchestrator.planfile import load_plan, resolve_plan_path

    if not plans:
        found = sorted(Path("plans").glob("*.yaml"))
        if not found:
            _fail("no plans given and no plans/*.yaml here")
        paths = found
    else:
        paths = []
        for name in plans:
            try:
                paths.append(resolve_plan_path(name))
            except InputError as exc:
                click.secho(f"{name}: {exc}", fg="red", err=True)
                paths.append(None)
    bad = 0
    for path in paths:
        if path is None:
            bad += 1
            continue
        try:
            plan = load_plan(path, display=str(path))
        except PlanInvalid as exc:
            bad += 1
            for issue in exc.issues:
                click.secho(str(issue), fg="red", err=True)
            continue
        click.echo(f"{path}: ok — {plan.ref}, {len(plan.steps)} step(s), {len(plan.validate)} probe(s)")
    if bad:
        _fail(f"{bad} of {len(paths)} plan(s) invalid")
    return EXIT_OK


def _connect(inventory, names: list[str]):
    """Connect hosts for the rest of the command: click closes them when the command ends."""
    from orchestrator.hosts import Connection

    return click.get_current_context().with_resource(Connection(inventory, names))


def _previews(plan, inventory, limit, options):
    from orchestrator.executor import Executor, preview

    executor = Executor(inventory, _Printer(), options)
    targets = _connect(inventory, inventory.hosts_in(plan.hosts, limit))
    return executor, [preview(plan, t, options) for t in targets]


_inventory_option = click.option("-i", "--inventory", "inventory_path", metavar="INV",
                                  help="pyinfra inventory file (default: inventories/demo.py, the bundled demo stack)")
_limit_option = click.option("--limit", "limit", multiple=True, metavar="HOST", help="only these hosts of the plan's group (repeatable)")
_soak_option = click.option("--soak", metavar="DURATION", help="override every watch step's window, e.g. 20s")
_soak_every_option = click.option("--soak-every", metavar="DURATION", help="sample interval during the soak (default: the plan's, at most a tenth of --soak)")


@main.command()
@click.argument("plan_name", metavar="PLAN")
@_inventory_option
@_limit_option
@click.option("--json", "as_json", is_flag=True, help="print the diff as JSON (see README: 'diff --json')")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="save the diff as a plan file that `rollout apply FILE` executes exactly")
@_soak_option
@_soak_every_option
def diff(plan_name, inventory_path, limit, as_json, output, soak, soak_every) -> None:
    """Show what `apply PLAN` would change on each host, changing nothing.

    Prints a unified diff of each file (secrets redacted), the container's live
    engine limits against the planned ones, the services to recreate, the soak
    window and the probes.
    """
    _run(lambda: _diff(plan_name, inventory_path, limit, as_json, output, _parse_soak(soak, soak_every)))


def _diff(plan_name, inventory_path, limit, as_json, output, options) -> int:
    from orchestrator.savedplan import save_previews

    plan = _load_plan(plan_name)
    inventory = _inventory(inventory_path, plan.path)
    _, previews = _previews(plan, inventory, limit, options)
    _print_previews(plan, previews, as_json, sys.stdout.isatty())
    if output:
        from orchestrator.hosts import write_local_file

        write_local_file(Path(output), json.dumps(save_previews(plan, inventory, previews, options), indent=2, default=str))
        click.echo(f"\nsaved to {output}: `rollout apply {output}` applies exactly this, or refuses if a host moved on",
                   err=as_json)
    return EXIT_OK


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("plan_name", metavar="PLAN|SAVED.json")
@_inventory_option
@_limit_option
@click.option("--dry-run", is_flag=True, help="show the diff and stop (same as `rollout diff`)")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation (required without a terminal)")
@_soak_option
@_soak_every_option
def apply(plan_name, inventory_path, limit, dry_run, yes, soak, soak_every) -> None:
    """Apply a plan (or exactly a saved diff) to its hosts, one host at a time.

    \b
    On each host: take the lock, journal, back up, apply each step, run the
    validate probes and the soak. On any failure: undo every applied step in
    reverse order and re-run the probes against the restored state.
    A saved diff (from `rollout diff PLAN -o FILE`) is refused when a host
    changed since it was saved.
    """
    options = _parse_soak(soak, soak_every)
    _run(lambda: _apply(plan_name, inventory_path, limit, dry_run, yes, options))


def _apply(plan_name, inventory_path, limit, dry_run, yes, options) -> int:
    saved = None
    if plan_name.endswith(".json"):
        from orchestrator.planfile import load_plan_bytes
        from orchestrator.savedplan import load_saved

        saved = load_saved(Path(plan_name))
        plan = load_plan_bytes(saved.plan_text.encode(), Path(saved.plan_path), f"{plan_name}:plan")
        if inventory_path is None:  # only the very file the plan was saved with (an inventory is code)
            inventory_path = str(saved.check_inventory())
        if options.soak is None and saved.soak:
            options.soak, options.soak_every = saved.soak, saved.soak_every
        limit = limit or tuple(saved.hosts)
    else:
        plan = _load_plan(plan_name)
    inventory = _inventory(inventory_path, plan.path)
    executor, previews = _previews(plan, inventory, limit, options)
    if saved is not None:
        # Refuse before asking when a host has already moved on; each host is checked
        # again under its lock right before it starts (executor.apply's before_start).
        saved.refuse_if_moved_on(previews)
    _print_previews(plan, previews, False, sys.stdout.isatty())
    if dry_run:
        return EXIT_OK
    if not any(c.mutates for pv in previews for c in pv.changes):
        click.echo(f"\n{plan.ref} is already in effect on every host: nothing to change, nothing to confirm")
    else:
        _confirm(yes, f"apply {plan.ref} to {', '.join(pv.target.name for pv in previews)}?")
    click.echo("")
    return _report(executor.apply(plan, previews, before_start=saved.moved_on if saved else None))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("plan_name", metavar="[PLAN]", required=False)
@click.option("--run", "run_id", metavar="ID", help="undo this run alone instead of every still-applied run of PLAN")
@_inventory_option
@_limit_option
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation (required without a terminal)")
def rollback(plan_name, run_id, inventory_path, limit, yes) -> None:
    """Emergency rollback: undo PLAN on each host, from the journal, back to the state
    before its oldest still-applied run.

    Every still-applied run of PLAN is undone, newest first, whether it finished,
    failed or was killed (even with SIGKILL): each step the journal says is applied
    is undone in reverse order, then the plan's probes verify the restored state.
    Refused (nothing changed) when that would clobber a later change; `--run ID`
    undoes one run alone. Running it twice is harmless.
    """
    if not plan_name and not run_id:
        raise click.UsageError("name a PLAN (e.g. day1) or a --run ID (see `rollout history`)")
    _run(lambda: _rollback(plan_name, run_id, inventory_path, limit, yes))


def _rollback(plan_name, run_id, inventory_path, limit, yes) -> int:
    from orchestrator.executor import Executor

    group, plan_path, plan = None, None, None
    if plan_name:
        try:
            plan = _load_plan(plan_name)
            group, plan_path, plan_name = plan.hosts, plan.path, plan.name
        except InputError:
            pass  # the plan file may be gone or broken: the journal is enough
    inventory = _inventory(inventory_path, plan_path)
    # the plan's group when the plan still loads and names one here; otherwise every host
    names = inventory.hosts_in(group if group in inventory.groups else "all", limit)
    executor = Executor(inventory, _Printer())
    targets = _connect(inventory, names)
    # Show what would be undone on each host before asking.
    for target in targets:
        runs = executor.runs_to_undo(target, plan_name, run_id)
        if not runs:
            click.echo(f"{target.name}: no run of {plan_name} is still applied")
        for run in runs:
            pending = run.pending_undo
            click.echo(f"{target.name}: run {run.run_id} ({run.start.get('plan')} v{run.start.get('version')}, "
                       f"{run.outcome}) — {len(pending)} step(s) to undo"
                       + "".join(f"\n   - {r['id']} ({r['kind']})" for r in reversed(pending)))
    _confirm(yes, f"roll back {'run ' + run_id if run_id else 'every still-applied run of ' + plan_name} "
                  f"on {', '.join(names)}?")
    return _report(executor.rollback_hosts(targets, plan_name, run_id, plan))


@main.command()
@_inventory_option
@_limit_option
@click.option("--json", "as_json", is_flag=True)
def status(inventory_path, limit, as_json) -> None:
    """What is live on each host, per plan, read from the host: in effect, not applied (rolled
    back), drifted (what differs is named) or unfinished (needs `rollout rollback`)."""
    def go() -> int:
        from orchestrator.status import LABELS, host_status

        inventory = _inventory(inventory_path)
        statuses = [s for target in _connect(inventory, inventory.hosts_in("all", limit)) for s in host_status(target)]
        if as_json:
            click.echo(json.dumps([s.to_json() for s in statuses], indent=2, default=str))
            return EXIT_OK
        if not statuses:
            click.echo("no runs recorded on any host")
        for s in statuses:
            label, color = LABELS[s.state]
            if s.state == "unfinished" and s.run["outcome"] == "interrupted":
                label += " (INTERRUPTED)"
            click.secho(f"{s.host}: {s.plan} v{s.run['version']} ({s.run['sha256']}) {label}", fg=color, bold=True)
            if s.state == "drifted":
                for d in s.differences:
                    click.echo(f"   - {d.describe()}")
            else:
                click.echo(f"   {s.detail}")
            for key in s.ignored if s.state in ("in_effect", "drifted") else []:
                click.echo(f"   ! {key} is in the plan but has no effect on this host (compose passes it to no container)")
            outcome = {"in_effect": "found it in effect; changed nothing"}.get(s.run["outcome"], s.run["outcome"].replace("_", " "))
            click.echo(f"   newest run {s.run['run']} ({outcome}) by {s.run['by']} at {s.run['started']}")
        return EXIT_OK
    _run(go)


@main.command()
@click.argument("plan_name", metavar="[PLAN]", required=False)
@_inventory_option
@_limit_option
@click.option("--json", "as_json", is_flag=True)
def history(plan_name, inventory_path, limit, as_json) -> None:
    """Every run on each host, oldest first, with its outcome."""
    def go() -> int:
        from orchestrator.journal import history_rows

        inventory = _inventory(inventory_path)
        rows = [row for target in _connect(inventory, inventory.hosts_in("all", limit))
                for row in history_rows(target, plan_name)]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return EXIT_OK
        if not rows:
            click.echo("no runs recorded")
        for row in rows:
            extra = f" — {row['reason'][:160]}" if row["reason"] else ""
            click.echo(f"{row['started']}  {row['host']}  {row['run']}  {row['plan']} v{row['version']} "
                       f"({row['sha256']})  {row['outcome']}  by {row['by']}{extra}")
        return EXIT_OK
    _run(go)


@main.command()
@_inventory_option
@_limit_option
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
def unlock(inventory_path, limit, yes) -> None:
    """Release a stale per-host lock left by a crashed run (asks first)."""
    def go() -> int:
        from orchestrator import lock

        inventory = _inventory(inventory_path)
        for target in _connect(inventory, inventory.hosts_in("all", limit)):
            info = lock.read_lock(target)
            if info is None:
                click.echo(f"{target.name}: not locked")
                continue
            stale = lock.is_stale(target, info)
            click.echo(f"{target.name}: lock {lock.describe(target, info, stale)}")
            if not stale:
                click.secho(f"{target.name}: the holder may still be running; make sure it is not before releasing",
                            fg="yellow")
            _confirm(yes, f"release the lock on {target.name}?")
            lock.release(target)
            click.echo(f"{target.name}: lock released")
        return EXIT_OK
    _run(go)


@main.command()
@click.argument("services", nargs=-1)
@click.option("-p", "--plan", "plan_name", metavar="PLAN",
              help="judge readings by this plan's watch thresholds (and watch its services when none are named)")
@_inventory_option
@click.option("--every", default="2s", show_default=True, metavar="DURATION")
@click.option("--count", type=int, default=0, help="stop after N samples (default: until Ctrl-C)")
def watch(services, plan_name, inventory_path, every, count) -> None:
    """Live docker stats of SERVICES (memory used/limit, CPU) on each host.

    With --plan, each reading is judged PASS / WARN / FAIL by that plan's watch
    thresholds, and SERVICES default to the services the plan watches.
    """
    def go() -> int:
        from orchestrator.engine import container_for
        from orchestrator.metrics import format_reading, judge, reading, watch_thresholds
        from orchestrator.units import parse_duration

        plan = _load_plan(plan_name) if plan_name else None
        thresholds = watch_thresholds(plan.steps) if plan else {}
        wanted = list(services) or list(thresholds)
        if not wanted:
            raise click.UsageError("name a SERVICE, or a --plan whose watch steps name them")
        inventory = _inventory(inventory_path, plan.path if plan else None)
        interval = parse_duration(every)
        targets = _connect(inventory, inventory.hosts_in(plan.hosts if plan else "all"))
        previous: dict[tuple[str, str], Any] = {}
        n = 0
        while not count or n < count:
            for target in targets:
                for service in wanted:
                    metrics, previous[(target.name, service)] = reading(
                        container_for(target, service), previous.get((target.name, service)))
                    warn, fail = thresholds.get(service, (None, {}))
                    verdict = judge(metrics, warn, fail)
                    click.echo(f"{time.strftime('%H:%M:%S')} {target.name} {service}: {format_reading(metrics)} {verdict.upper()}")
            n += 1
            if not count or n < count:
                time.sleep(interval)
        return EXIT_OK
    _run(go)


@main.group()
def demo() -> None:
    """The bundled MediaNest demo stack on this machine.

    \b
    The tracked examples/medianest is never run or changed in place: `demo up` copies it
    once to where live state belongs and runs it there; plans patch that copy:
      $ROLLOUT_DEMO_DIR, else $XDG_STATE_HOME/rollout/demo/medianest
      (default ~/.local/state/rollout/demo/medianest).
    Compose project $ROLLOUT_DEMO_PROJECT (default medianest); ports and frontend tag
    from MEDIANEST_APP_PORT, MEDIANEST_FRONTEND_PORT, MEDIANEST_REDIS_PORT (18080,
    18081, 16379) and MEDIANEST_FRONTEND_IMAGE. `demo down --purge` starts over.
    Exits 0 when done, 2 with the reason when the engine or compose could not do it.
    """


def _demo_project(inventory_path):
    from orchestrator import demo as demo_stack

    inventory = _inventory(inventory_path, demo_set_up=False)
    data = next(iter(inventory.host_data.values()))
    return demo_stack.project_for(data), data


def _demo_run(body) -> None:
    """`_run` for a demo command: an engine or compose failure is one clear line, not a traceback."""
    def go() -> int:
        import docker.errors

        from orchestrator.demo import DemoError

        try:
            return body()
        except (docker.errors.DockerException, OSError, RuntimeError) as exc:
            raise DemoError(f"{type(exc).__name__}: {exc}") from exc
    _run(go)


@demo.command("up")
@_inventory_option
def demo_up(inventory_path) -> None:
    """Set up the stack if needed, build its images and start it.

    Images are built from scratch out of host binaries: no registry is needed.

    The first `up` copies examples/medianest to the stack's directory (see `rollout demo
    --help`). Later ones keep that copy, which plans change, and say so when
    examples/medianest has changed since. Containers that stopped or lost their published ports
    are recreated. On a healthy stack a second `up` changes nothing.
    """
    def go() -> int:
        from orchestrator import demo as demo_stack

        project, data = _demo_project(inventory_path)
        demo_stack.materialize(Path(project.project_dir), log=click.echo)
        demo_stack.up(project, demo_stack.compose_env(data), log=click.echo)
        click.echo(f"demo stack up in {project.project_dir} (compose project {project.project_name}): "
                   f"app http://127.0.0.1:{data.get('app_port')}/api/health, "
                   f"frontend http://127.0.0.1:{data.get('frontend_port')}/")
        return EXIT_OK
    _demo_run(go)


@demo.command("down")
@_inventory_option
@click.option("--purge", is_flag=True,
              help="also delete the stack's directory (its changed files and journal) and the frontend "
                   "image tags, so the next `demo up` starts from examples/medianest")
def demo_down(inventory_path, purge) -> None:
    """Stop and remove the containers (--purge: and the stack's copy).

    The stack's directory (its changed files and journal) and the images are kept for
    the next `demo up`, unless --purge.
    """
    def go() -> int:
        from orchestrator import demo as demo_stack

        project, data = _demo_project(inventory_path)
        if purge:  # refuse before anything is stopped
            demo_stack.check_purgeable(Path(project.project_dir))
        demo_stack.down(project, demo_stack.compose_env(data), volumes=purge, log=click.echo)
        if purge:
            demo_stack.purge(Path(project.project_dir), str(data.get("frontend_image") or demo_stack.DEFAULT_FRONTEND_IMAGE),
                             log=click.echo)
        return EXIT_OK
    _demo_run(go)


@demo.command("status")
@_inventory_option
def demo_status(inventory_path) -> None:
    """Where the demo stack lives, and its containers and their state."""
    def go() -> int:
        from orchestrator import demo as demo_stack

        project, _ = _demo_project(inventory_path)
        where = "set up" if demo_stack.is_materialized(Path(project.project_dir)) else "not set up"
        click.echo(f"stack directory: {project.project_dir} ({where}); compose project {project.project_name}")
        rows = demo_stack.status(project)
        if not rows:
            click.echo("demo stack is not running (start it with `rollout demo up`)")
        for row in rows:
            click.echo("  ".join(f"{k}={v}" for k, v in row.items()))
        return EXIT_OK
    _demo_run(go)


def _interrupt_in_main_greenlet() -> None:
    """Ctrl-C raises KeyboardInterrupt in the command's own code, never inside one of pyinfra's
    greenlets (which would swallow it as a failed connection): gevent's hub throws it there.
    gevent is loaded only for remote hosts; a local run gets a plain KeyboardInterrupt."""

    def interrupt(signum, frame) -> None:
        if "gevent" in sys.modules:
            import gevent
            from greenlet import getcurrent

            current = main = getcurrent()
            while main.parent is not None:  # the thread's root greenlet runs the command
                main = main.parent
            if current is not main:
                gevent.get_hub().loop.run_callback(main.throw, KeyboardInterrupt)
                return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)


def _run(fn) -> None:
    """Call a command body; map every error onto an exit code and one clear line, never a traceback.

    What changes hosts (apply, rollback) catches its own errors once the first change is
    made and answers with 1 or 3; whatever reaches here happened before any change.
    """
    _interrupt_in_main_greenlet()
    try:
        code = fn()
    except RolloutError as exc:
        _fail(str(exc), exc.exit_code)
    except click.ClickException:
        raise  # usage errors: click prints them and exits 2
    except (KeyboardInterrupt, click.Abort):
        _fail("interrupted (Ctrl-C); nothing changed", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 — a bug or a connector failure: say so, and how to see more
        if _debug():
            import traceback

            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc}; nothing changed"
              + ("" if _debug() else " (run again with `rollout --debug ...` for the traceback)"), EXIT_INTERNAL)
    sys.exit(code or EXIT_OK)
