"""Commands that read plans and change hosts: validate, diff, apply, rollback."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from orchestrator.cli.app import (
    EXIT_CODES_HELP, Printer, confirm, connect_hosts, fail, inventory_for, inventory_option, limit_option, load_named_plan,
    main, parse_soak, report_outcomes, run_command, soak_every_option, soak_option,
)
from orchestrator.errors import EXIT_OK, InputError


@main.command()
@click.argument("plans", nargs=-1)
def validate(plans: tuple[str, ...]) -> None:
    """Check plan files (schema and semantics); no host is touched.

    PLANS are names (day1 → plans/day1.yaml) or paths; default: every plans/*.yaml.
    Exits 0 when all are valid, 2 otherwise, listing every error as FILE:LINE: PATH: MESSAGE.
    """
    run_command(lambda: _validate(plans))


def _validate(plans: tuple[str, ...]) -> int:
    from orchestrator.plan import PlanInvalid
    from orchestrator.planfile import load_plan, resolve_plan_path

    if not plans:
        found = sorted(Path("plans").glob("*.yaml"))
        if not found:
            fail("no plans given and no plans/*.yaml here")
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
        fail(f"{bad} of {len(paths)} plan(s) invalid")
    return EXIT_OK


def previews_for(plan, inventory, limit, options):
    from orchestrator.executor import Executor
    from orchestrator.preview import preview

    executor = Executor(inventory, Printer(), options)
    targets = connect_hosts(inventory, inventory.hosts_in(plan.hosts, limit))
    return executor, [preview(plan, t, options) for t in targets]


def print_previews(plan, previews, as_json: bool, color: bool) -> None:
    from orchestrator.diff import colorize
    from orchestrator.preview import previews_json

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


@main.command()
@click.argument("plan_name", metavar="PLAN")
@inventory_option
@limit_option
@click.option("--json", "as_json", is_flag=True, help="print the diff as JSON (see README: 'diff --json')")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="save the diff as a plan file that `rollout apply FILE` executes exactly")
@soak_option
@soak_every_option
def diff(plan_name, inventory_path, limit, as_json, output, soak, soak_every) -> None:
    """Show what `apply PLAN` would change on each host, changing nothing.

    Prints a unified diff of each file (secrets redacted), the container's live
    engine limits against the planned ones, the services to recreate, the soak
    window and the probes.
    """
    run_command(lambda: _diff(plan_name, inventory_path, limit, as_json, output, parse_soak(soak, soak_every)))


def _diff(plan_name, inventory_path, limit, as_json, output, options) -> int:
    from orchestrator.savedplan import save_previews

    plan = load_named_plan(plan_name)
    inventory = inventory_for(inventory_path, plan.path)
    _, previews = previews_for(plan, inventory, limit, options)
    print_previews(plan, previews, as_json, sys.stdout.isatty())
    if output:
        from orchestrator.hosts import write_local_file

        write_local_file(Path(output), json.dumps(save_previews(plan, inventory, previews, options), indent=2, default=str))
        click.echo(f"\nsaved to {output}: `rollout apply {output}` applies exactly this, or refuses if a host moved on",
                   err=as_json)
    return EXIT_OK


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("plan_name", metavar="PLAN|SAVED.json")
@inventory_option
@limit_option
@click.option("--dry-run", is_flag=True, help="show the diff and stop (same as `rollout diff`)")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation (required without a terminal)")
@soak_option
@soak_every_option
def apply(plan_name, inventory_path, limit, dry_run, yes, soak, soak_every) -> None:
    """Apply a plan (or exactly a saved diff) to its hosts, one host at a time.

    \b
    On each host: take the lock, journal, back up, apply each step, run the
    validate probes and the soak. On any failure: undo every applied step in
    reverse order and re-run the probes against the restored state.
    A saved diff (from `rollout diff PLAN -o FILE`) is refused when a host
    changed since it was saved.
    """
    options = parse_soak(soak, soak_every)
    run_command(lambda: _apply(plan_name, inventory_path, limit, dry_run, yes, options))


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
        plan = load_named_plan(plan_name)
    inventory = inventory_for(inventory_path, plan.path)
    executor, previews = previews_for(plan, inventory, limit, options)
    if saved is not None:
        # Refuse before asking when a host has already moved on; each host is checked
        # again under its lock right before it starts (executor.apply's before_start).
        saved.refuse_if_moved_on(previews)
    print_previews(plan, previews, False, sys.stdout.isatty())
    if dry_run:
        return EXIT_OK
    if not any(c.mutates for pv in previews for c in pv.changes):
        click.echo(f"\n{plan.ref} is already in effect on every host: nothing to change, nothing to confirm")
    else:
        confirm(yes, f"apply {plan.ref} to {', '.join(pv.target.name for pv in previews)}?")
    click.echo("")
    return report_outcomes(executor.apply(plan, previews, before_start=saved.moved_on if saved else None))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("plan_name", metavar="[PLAN]", required=False)
@click.option("--run", "run_id", metavar="ID", help="undo this run alone instead of every still-applied run of PLAN")
@inventory_option
@limit_option
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
    run_command(lambda: _rollback(plan_name, run_id, inventory_path, limit, yes))


def _rollback(plan_name, run_id, inventory_path, limit, yes) -> int:
    from orchestrator.executor import Executor

    group, plan_path, plan = None, None, None
    if plan_name:
        try:
            plan = load_named_plan(plan_name)
            group, plan_path, plan_name = plan.hosts, plan.path, plan.name
        except InputError:
            pass  # the plan file may be gone or broken: the journal is enough
    inventory = inventory_for(inventory_path, plan_path)
    # the plan's group when the plan still loads and names one here; otherwise every host
    names = inventory.hosts_in(group if group in inventory.groups else "all", limit)
    executor = Executor(inventory, Printer())
    targets = connect_hosts(inventory, names)
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
    confirm(yes, f"roll back {'run ' + run_id if run_id else 'every still-applied run of ' + plan_name} "
                  f"on {', '.join(names)}?")
    return report_outcomes(executor.rollback_hosts(targets, plan_name, run_id, plan))
