"""`rollout demo up | down | status`: the bundled MediaNest demo stack."""
from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.app import inventory_for, inventory_option, main, run_command
from orchestrator.errors import EXIT_OK


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

    inventory = inventory_for(inventory_path, demo_set_up=False)
    data = next(iter(inventory.host_data.values()))
    return demo_stack.project_for(data), data


def _demo_run(body) -> None:
    """`run_command` for a demo command: an engine or compose failure is one clear line, not a traceback."""
    def go() -> int:
        import docker.errors

        from orchestrator.demo import DemoError

        try:
            return body()
        except (docker.errors.DockerException, OSError, RuntimeError) as exc:
            raise DemoError(f"{type(exc).__name__}: {exc}") from exc
    run_command(go)


@demo.command("up")
@inventory_option
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
@inventory_option
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
@inventory_option
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
