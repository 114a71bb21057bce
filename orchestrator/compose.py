"""Compose command builders: return argv lists, run nothing (Kamal's shape).

Compose v1 (`docker-compose` 1.29) applies `deploy.resources` only with
`--compatibility`; v2 (`docker compose`) always does. Both take the same
sub-commands for what we need.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

V1 = ["docker-compose", "--compatibility"]
V2 = ["docker", "compose"]

# Shell snippet that picks the compose tool available on a host at run time.
DETECT = (
    "if docker compose version >/dev/null 2>&1; then set -- docker compose; "
    "elif command -v docker-compose >/dev/null 2>&1; then set -- docker-compose --compatibility; "
    "else echo 'neither docker compose (v2) nor docker-compose (v1) is installed' >&2; exit 127; fi; "
)


@dataclass(frozen=True)
class ComposeProject:
    """One compose project on a host: where it lives and what it is called."""

    project_dir: str
    compose_file: str
    project_name: str

    def _base(self, compose_file: str | None = None) -> list[str]:
        return ["-p", self.project_name, "-f", compose_file or self.compose_file]

    def config_check(self, compose_file: str | None = None) -> list[str]:
        """Validate a compose file with the compose tool itself."""
        return self._base(compose_file) + ["config", "-q"]

    def config_hash(self, services: list[str]) -> list[str]:
        """Print `SERVICE HASH` lines: the config hash compose would label each service's
        container with now (`com.docker.compose.config-hash`); equal means up to date."""
        return self._base() + ["config", f"--hash={','.join(services)}"]

    def up(self, services: list[str] | None = None, *, recreate: bool = False) -> list[str]:
        argv = self._base() + ["up", "-d", "--no-build"]
        if services:
            argv.append("--no-deps")
        if recreate:
            argv.append("--force-recreate")
        return argv + list(services or [])

    def down(self) -> list[str]:
        return self._base() + ["down", "--remove-orphans", "--timeout", "10"]

    def ps(self) -> list[str]:
        return self._base() + ["ps"]

    def config(self) -> list[str]:
        """Print the compose file as the tool resolves it (variables interpolated)."""
        return self._base() + ["config"]

    def command(self, *args: str) -> list[str]:
        """Any other sub-command for this project, e.g. `command("restart", "app")`."""
        return self._base() + list(args)

    def shell(self, args: list[str]) -> str:
        """A shell command line that runs `compose <args>` in the project directory."""
        return (
            f"cd {shlex.quote(self.project_dir)} && {DETECT}"
            f'"$@" {" ".join(shlex.quote(a) for a in args)}'
        )


# deploy.resources keys a plan can set that compose passes to no container outside swarm mode:
# v1 (`--compatibility`) warns "The following deploy sub-keys are not supported and have been
# ignored: resources.reservations.cpus"; v2 drops it silently ("Cpu reservation is a swarm option").
IGNORED_DEPLOY_KEYS = {
    "reservations.cpus": "compose gives a container no CPU reservation outside swarm mode (docker-compose 1.29 "
                         "warns 'deploy sub-keys are not supported and have been ignored: resources.reservations.cpus'; "
                         "docker compose v2 drops it silently)",
}


def ignored_deploy_keys(limits: dict | None, reservations: dict | None) -> list[tuple[str, str, str]]:
    """(deploy.resources key, planned value, why) for each planned key the engine never sees."""
    out = []
    for section, values in (("limits", limits), ("reservations", reservations)):
        for key, value in (values or {}).items():
            why = IGNORED_DEPLOY_KEYS.get(f"{section}.{key}")
            if why:
                out.append((f"deploy.resources.{section}.{key}", str(value), why))
    return out


_DETECTED: tuple[str, ...] | None = None


def compose_argv() -> list[str]:
    """The compose command prefix on this machine: `docker compose` (v2) if it works, else
    `docker-compose --compatibility` (v1). Detected once per process."""
    global _DETECTED
    if _DETECTED is None:
        import shutil
        import subprocess

        try:
            subprocess.run(V2 + ["version"], capture_output=True, check=True, timeout=30)
            _DETECTED = tuple(V2)
        except (OSError, subprocess.SubprocessError):
            if shutil.which("docker-compose") is None:
                raise RuntimeError("neither docker compose (v2) nor docker-compose (v1) is installed") from None
            _DETECTED = tuple(V1)
    return list(_DETECTED)
