"""Where the bundled demo stack lives and the host data that points at it.

Light on purpose (no Docker SDK): `inventories/demo.py` imports it on every
command, before the CLI knows which hosts it will reach.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError

DEFAULT_FRONTEND_IMAGE = "medianest/frontend:latest"

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "medianest"
COMPOSE_FILE = "docker-compose.production.yml"
DEMO_DIR_ENV = "ROLLOUT_DEMO_DIR"
DEMO_PROJECT_ENV = "ROLLOUT_DEMO_PROJECT"
DEFAULT_PROJECT = "medianest"
# Written into a copy made by `materialize`: the sha256 of each tracked file as copied.
SOURCE_MANIFEST = ".rollout-demo-source.json"
# Live state a copy of the example never takes along (and a manifest never lists).
LIVE_STATE = (".build", ".rollout", ".env", "*.backup", "*.rollout-tmp", SOURCE_MANIFEST)
# inventory host data key -> (compose variable of docker-compose.production.yml, default)
DEMO_PORTS = {"app_port": ("MEDIANEST_APP_PORT", 18080), "frontend_port": ("MEDIANEST_FRONTEND_PORT", 18081),
              "redis_port": ("MEDIANEST_REDIS_PORT", 16379)}


def demo_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the live demo stack lives: $ROLLOUT_DEMO_DIR, else $XDG_STATE_HOME/rollout/demo/medianest
    (XDG_STATE_HOME defaults to ~/.local/state). Never the tracked examples/medianest: plans change it."""
    env = os.environ if environ is None else environ
    if env.get(DEMO_DIR_ENV):
        return Path(env[DEMO_DIR_ENV]).expanduser().absolute()
    state = env.get("XDG_STATE_HOME", "")
    if not state.startswith("/"):  # the XDG spec: a relative value is invalid and ignored
        state = str(Path.home() / ".local" / "state")
    return Path(state) / "rollout" / "demo" / "medianest"


def demo_host_data(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Host data of the bundled demo stack (inventories/demo.py): `demo_dir()`, compose project
    $ROLLOUT_DEMO_PROJECT (default medianest), ports and frontend tag from the same MEDIANEST_*
    variables the compose file reads (defaults 18080, 18081, 16379, medianest/frontend:latest)."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {
        "project_dir": str(demo_dir(env)),
        "compose_file": COMPOSE_FILE,
        "compose_project": env.get(DEMO_PROJECT_ENV) or DEFAULT_PROJECT,
    }
    for key, (var, default) in DEMO_PORTS.items():
        value = env.get(var) or str(default)
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ValueError(f"{var}={value!r} is not a TCP port number")
        data[key] = int(value)
    data["frontend_image"] = env.get("MEDIANEST_FRONTEND_IMAGE") or DEFAULT_FRONTEND_IMAGE
    return data


def is_materialized(target: Path) -> bool:
    """True when `target` holds a demo stack (its compose file)."""
    return (Path(target) / COMPOSE_FILE).is_file()


def check_set_up(host_data: dict[str, dict[str, Any]], inventory_path: str | Path) -> None:
    """Raise InputError when an inventory's @local host is the demo stack and `demo up` has not set it
    up yet: every command but `demo up` needs it there (clear advice instead of a missing-file error)."""
    here = demo_dir()
    data = host_data.get("@local")
    if data and Path(str(data.get("project_dir", ""))) == here and not is_materialized(here):
        raise InputError(f"{inventory_path}: host @local: the demo stack is not set up at {here}: "
                         "run `rollout demo up` first", key="project_dir")
