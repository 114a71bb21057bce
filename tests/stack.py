"""A throwaway copy of the bundled MediaNest demo stack for tests.

Each DemoStack lives in its own temporary directory with its own compose project
name (`rt<random>`), free 127.0.0.1 ports and its own frontend tag, so it never
touches a stack a developer left running (project `medianest`, default ports).
"""
from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import docker
import docker.errors
from tenacity import Retrying, stop_after_attempt, wait_fixed

from orchestrator import demo
from orchestrator.compose import ComposeProject
from orchestrator.engine import exec_in

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "medianest"
COMPOSE_FILE = "docker-compose.production.yml"
DEFAULT_PORTS = {18080, 18081, 16379}


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (never the demo's default ports)."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            port = s.getsockname()[1]
            if port not in DEFAULT_PORTS:
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


class DemoStack:
    """The demo stack copied into `base_dir`, ready for `up()` / `down()`."""

    def __init__(self, base_dir: Path, *, extra_env: dict[str, str] | None = None, log=None) -> None:
        self.project_dir = Path(base_dir) / "medianest"
        shutil.copytree(EXAMPLE, self.project_dir, ignore=shutil.ignore_patterns(".build", ".rollout", "*.backup", ".env"))
        self.project_name = f"rt{secrets.token_hex(4)}"
        assert self.project_name != "medianest"
        self.app_port, self.frontend_port, self.redis_port = free_ports(3)
        # A repository of its own, so a plan's `keep_as: stable` never touches the shared demo tags.
        self.frontend_repo = f"medianest-{self.project_name}/frontend"
        self.frontend_image = f"{self.frontend_repo}:latest"
        self.project = ComposeProject(str(self.project_dir), COMPOSE_FILE, self.project_name)
        self.env = {
            "MEDIANEST_APP_PORT": str(self.app_port),
            "MEDIANEST_FRONTEND_PORT": str(self.frontend_port),
            "MEDIANEST_REDIS_PORT": str(self.redis_port),
            "MEDIANEST_FRONTEND_IMAGE": self.frontend_image,
            **(extra_env or {}),
        }
        self.log = log or (lambda line: None)
        (self.project_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        self.inventory_path = Path(base_dir) / "inventory.py"
        self.inventory_path.write_text(
            '"""pyinfra inventory of a throwaway MediaNest demo stack (written by tests/stack.py)."""\n\n'
            f"app_servers = [\n    (\"@local\", {self.host_data!r}),\n]\n"
        )

    # ------------------------------------------------------------------ facts
    @property
    def host_data(self) -> dict[str, Any]:
        """The host data keys the rollout inventory carries for this stack."""
        return {
            "project_dir": str(self.project_dir),
            "compose_file": COMPOSE_FILE,
            "compose_project": self.project_name,
            "app_port": self.app_port,
            "frontend_port": self.frontend_port,
            "redis_port": self.redis_port,
            "frontend_image": self.frontend_image,
        }

    @property
    def compose_path(self) -> Path:
        return self.project_dir / COMPOSE_FILE

    def url(self, path: str, service: str = "app") -> str:
        port = {"app": self.app_port, "frontend": self.frontend_port}[service]
        return f"http://127.0.0.1:{port}{path}"

    # ------------------------------------------------------------------ lifecycle
    def up(self, **kwargs: Any) -> None:
        demo.up(self.project, self.env, frontend_image=self.frontend_image, log=self.log, **kwargs)

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a compose sub-command for this project (e.g. `stack.compose("up", "-d", "app")`)."""
        return demo.run_compose(self.project, self.project.command(*args), self.env, log=self.log)

    def down(self) -> None:
        """Remove containers, networks, volumes and this stack's frontend tags; never raises."""
        try:
            demo.run_compose(self.project, self.project.down() + ["-v"], self.env, log=self.log)
        except Exception as exc:  # noqa: BLE001 - cleanup must go on
            self.log(f"compose down failed: {exc}")
        remove_project(self.project_name, self.frontend_repo)

    def __enter__(self) -> DemoStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------------ access
    def container(self, service: str) -> Any:
        """The docker SDK container of `service` (found by compose labels)."""
        client = docker.from_env()
        found = client.containers.list(
            all=True,
            filters={"label": [f"com.docker.compose.project={self.project_name}", f"com.docker.compose.service={service}"]},
        )
        if len(found) != 1:
            raise LookupError(f"{self.project_name}: expected one {service} container, found {len(found)}")
        return found[0]

    def redis_cli(self, *args: str) -> str:
        code, text, err = exec_in(self.container("redis"), ["redis-cli", *args])
        text = text + err
        if code != 0:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed ({code}): {text}")
        return text

    def redis_config(self, pattern: str = "*") -> dict[str, str]:
        """CONFIG GET PATTERN as a dict, in one exec; retried while Redis is busy starting."""
        for attempt in Retrying(stop=stop_after_attempt(5), wait=wait_fixed(0.5), reraise=True):
            with attempt:
                text = self.redis_cli("CONFIG", "GET", pattern)
                lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
                if len(lines) < 2 or len(lines) % 2:
                    raise RuntimeError(f"CONFIG GET {pattern}: unexpected answer {text[:200]!r}")
        return dict(zip(lines[::2], lines[1::2]))

    def redis_config_get(self, key: str) -> str:
        config = self.redis_config(key)
        if key not in config:
            raise KeyError(key)
        return config[key]

    def redis_info(self, section: str = "stats") -> dict[str, str]:
        info = {}
        for line in self.redis_cli("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                key, _, value = line.strip().partition(":")
                info[key] = value
        return info


def remove_project(project_name: str, frontend_repo: str) -> None:
    """Remove a test's compose project (containers, networks) and its frontend tags; never raises."""
    assert project_name != "medianest" and not frontend_repo.startswith("medianest/")
    client = docker.from_env()
    try:
        label = f"com.docker.compose.project={project_name}"
        for container in client.containers.list(all=True, filters={"label": label}):
            _ignore(container.remove, force=True, v=True)
        for network in client.networks.list(filters={"label": label}):
            _ignore(network.remove)
        for image in client.images.list(name=frontend_repo):
            for tag in image.tags:
                if tag.startswith(frontend_repo + ":"):
                    # noprune: keep the untagged build cache for the next stack
                    _ignore(client.images.remove, tag, noprune=True)
    finally:
        client.close()


def _ignore(fn, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except docker.errors.APIError:
        pass
