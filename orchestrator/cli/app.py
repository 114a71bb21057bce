"""The `rollout` command group and what every command shares: options, host connections, exit codes.

Click only: commands parse, call the modules that do the work, print, and set the exit code.
"""
from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum, frame) -> None:
    # Ctrl-C while Python imports (seconds on a busy machine): nothing ran yet. run_command replaces this.
    sys.stderr.write("error: interrupted (Ctrl-C); nothing changed\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_while_starting)

import time
from pathlib import Path

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


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


class Printer:
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


def inventory_for(path: str | None, plan_path: Path | None = None, *, demo_set_up: bool = True):
    from orchestrator.inventory import load_inventory, prepare_imports_for

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


def load_named_plan(name: str):
    from orchestrator.planfile import load_plan, resolve_plan_path

    path = resolve_plan_path(name)
    return load_plan(path, display=str(path))


def parse_soak(soak: str | None, every: str | None):
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


def confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail("refusing to change hosts without confirmation: no terminal to ask on; pass --yes")
    if not click.confirm(question, default=False):
        fail("cancelled; nothing changed")


def report_outcomes(outcomes) -> int:
    from orchestrator.executor import exit_code

    click.echo("")
    for o in outcomes:
        color = {0: "green", 1: "yellow", 3: "red", 4: "magenta"}.get(o.exit_code, "red")
        click.secho(f"{o.host}: {o.message}", fg=color, err=o.exit_code != EXIT_OK)
        for line in o.emergency:
            click.secho(line, fg="red", bold=True, err=True)
        if o.traceback:
            click.echo(o.traceback.rstrip() if debug_enabled() else "  (run again with `rollout --debug ...` for the traceback)",
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


def debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


def connect_hosts(inventory, names: list[str]):
    """Connect hosts for the rest of the command: click closes them when the command ends."""
    from orchestrator.hosts import Connection

    return click.get_current_context().with_resource(Connection(inventory, names))


inventory_option = click.option("-i", "--inventory", "inventory_path", metavar="INV",
                                  help="pyinfra inventory file (default: inventories/demo.py, the bundled demo stack)")
limit_option = click.option("--limit", "limit", multiple=True, metavar="HOST", help="only these hosts of the plan's group (repeatable)")
soak_option = click.option("--soak", metavar="DURATION", help="override every watch step's window, e.g. 20s")
soak_every_option = click.option("--soak-every", metavar="DURATION", help="sample interval during the soak (default: the plan's, at most a tenth of --soak)")


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


def run_command(fn) -> None:
    """Call a command body; map every error onto an exit code and one clear line, never a traceback.

    What changes hosts (apply, rollback) catches its own errors once the first change is
    made and answers with 1 or 3; whatever reaches here happened before any change.
    """
    _interrupt_in_main_greenlet()
    try:
        code = fn()
    except RolloutError as exc:
        fail(str(exc), exc.exit_code)
    except click.ClickException:
        raise  # usage errors: click prints them and exits 2
    except (KeyboardInterrupt, click.Abort):
        fail("interrupted (Ctrl-C); nothing changed", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 — a bug or a connector failure: say so, and how to see more
        if debug_enabled():
            import traceback

            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc}; nothing changed"
              + ("" if debug_enabled() else " (run again with `rollout --debug ...` for the traceback)"), EXIT_INTERNAL)
    sys.exit(code or EXIT_OK)
