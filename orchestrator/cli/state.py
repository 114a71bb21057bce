"""Commands that read hosts: status, history, unlock, watch."""
from __future__ import annotations

import json
import time
from typing import Any

import click

from orchestrator.cli.app import (
    confirm, connect_hosts, inventory_for, inventory_option, limit_option, load_named_plan, main, run_command,
)
from orchestrator.errors import EXIT_OK


@main.command()
@inventory_option
@limit_option
@click.option("--json", "as_json", is_flag=True)
def status(inventory_path, limit, as_json) -> None:
    """What is live on each host, per plan, read from the host: in effect, not applied (rolled
    back), drifted (what differs is named) or unfinished (needs `rollout rollback`)."""
    def go() -> int:
        from orchestrator.status import LABELS, host_status

        inventory = inventory_for(inventory_path)
        statuses = [s for target in connect_hosts(inventory, inventory.hosts_in("all", limit)) for s in host_status(target)]
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
    run_command(go)


@main.command()
@click.argument("plan_name", metavar="[PLAN]", required=False)
@inventory_option
@limit_option
@click.option("--json", "as_json", is_flag=True)
def history(plan_name, inventory_path, limit, as_json) -> None:
    """Every run on each host, oldest first, with its outcome."""
    def go() -> int:
        from orchestrator.journal import history_rows

        inventory = inventory_for(inventory_path)
        rows = [row for target in connect_hosts(inventory, inventory.hosts_in("all", limit))
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
    run_command(go)


@main.command()
@inventory_option
@limit_option
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
def unlock(inventory_path, limit, yes) -> None:
    """Release a stale per-host lock left by a crashed run (asks first)."""
    def go() -> int:
        from orchestrator import lock

        inventory = inventory_for(inventory_path)
        for target in connect_hosts(inventory, inventory.hosts_in("all", limit)):
            info = lock.read_lock(target)
            if info is None:
                click.echo(f"{target.name}: not locked")
                continue
            stale = lock.is_stale(target, info)
            click.echo(f"{target.name}: lock {lock.describe(target, info, stale)}")
            if not stale:
                click.secho(f"{target.name}: the holder may still be running; make sure it is not before releasing",
                            fg="yellow")
            confirm(yes, f"release the lock on {target.name}?")
            lock.release(target)
            click.echo(f"{target.name}: lock released")
        return EXIT_OK
    run_command(go)


@main.command()
@click.argument("services", nargs=-1)
@click.option("-p", "--plan", "plan_name", metavar="PLAN",
              help="judge readings by this plan's watch thresholds (and watch its services when none are named)")
@inventory_option
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

        plan = load_named_plan(plan_name) if plan_name else None
        thresholds = watch_thresholds(plan.steps) if plan else {}
        wanted = list(services) or list(thresholds)
        if not wanted:
            raise click.UsageError("name a SERVICE, or a --plan whose watch steps name them")
        inventory = inventory_for(inventory_path, plan.path if plan else None)
        interval = parse_duration(every)
        targets = connect_hosts(inventory, inventory.hosts_in(plan.hosts if plan else "all"))
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
    run_command(go)
