"""A host's containers through the Docker SDK: find them by compose labels, inspect, stats, exec.

Image builds and tags are `steps/image_build.py`'s; the demo's own images are `demo.py`'s.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from orchestrator import composefile
from orchestrator.errors import HostError, InputError
from orchestrator.hosts import Target


def container_for(target: Target, service: str, *, required: bool = True):
    """The container of a compose service, found by its labels (running ones first)."""
    project = target.data["compose_project"]
    try:
        found = target.docker.containers.list(
            all=True,
            filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]},
        )
    except HostError:
        raise
    except Exception as exc:
        raise HostError(f"cannot list containers: {exc}", host=target.name) from exc
    found.sort(key=lambda c: c.status != "running")
    if not found:
        if required:
            raise HostError(f"no container for service '{service}' of compose project '{project}'", host=target.name)
        return None
    return found[0]


def require_service(target: Target, service: str) -> None:
    """Bad input (InputError, key `service`) unless `service` belongs to the host's compose project:
    a container carries its labels, or the compose file declares it."""
    if container_for(target, service, required=False) is not None:
        return
    path = target.path(target.data["compose_file"])
    raw = target.read_file(path)
    if raw is None:
        raise InputError(f"no service '{service}': no container of compose project "
                         f"'{target.data['compose_project']}' has it and there is no compose file {path}", key="service", host=target.name)
    composefile.service(composefile.load(raw.decode("utf-8"), f"{target.name}:{path}"), service, f"{target.name}:{path}")


def engine_limits(container) -> dict[str, Any]:
    """What the engine actually applied to a container."""
    host = container.attrs["HostConfig"]
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in container.attrs["Config"].get("Env") or [])
    return {
        "memory": host.get("Memory") or 0,
        "nano_cpus": host.get("NanoCpus") or 0,
        "memory_reservation": host.get("MemoryReservation") or 0,
        "environment": env,
        "image_id": container.attrs.get("Image"),
        "id": container.id,
    }


@dataclass
class StatsSample:
    at: float
    memory_used: int
    memory_limit: int
    cpu_total: int
    system_cpu: int
    online_cpus: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used / self.memory_limit if self.memory_limit else 0.0


def stats_sample(container) -> StatsSample:
    """One `docker stats` sample in milliseconds (one_shot) — memory as the CLI shows it."""
    s = container.stats(stream=False, one_shot=True)
    mem = s.get("memory_stats") or {}
    st = mem.get("stats") or {}
    # docker CLI: usage minus inactive file cache (cgroup v1 total_inactive_file, v2 inactive_file)
    cache = st.get("total_inactive_file", st.get("inactive_file", 0))
    used = max(0, int(mem.get("usage", 0)) - int(cache))
    cpu = s.get("cpu_stats") or {}
    return StatsSample(
        at=time.monotonic(),
        memory_used=used,
        memory_limit=int(mem.get("limit", 0)),
        cpu_total=int((cpu.get("cpu_usage") or {}).get("total_usage", 0)),
        system_cpu=int(cpu.get("system_cpu_usage", 0)),
        online_cpus=int(cpu.get("online_cpus") or 1),
    )


def cpu_percent(prev: StatsSample, cur: StatsSample) -> float:
    """CPU % between two of our own samples (as `docker stats` computes it)."""
    d_cpu = cur.cpu_total - prev.cpu_total
    d_sys = cur.system_cpu - prev.system_cpu
    if d_cpu <= 0 or d_sys <= 0:
        return 0.0
    return 100.0 * d_cpu / d_sys * cur.online_cpus


class _LostOutput(Exception):
    pass


def exec_in(container, argv: list[str], *, environment: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run argv in a container: (exit code, stdout, stderr).

    The engine can drop the output of a process that exits very quickly (an
    attach race seen under load): an empty answer with exit 0 is retried.
    Only use it for commands that are safe to repeat.
    """
    def once() -> tuple[int, str, str]:
        code, (out, err) = container.exec_run(argv, environment=environment, demux=True)
        if code == 0 and not out and not err:
            raise _LostOutput()
        return code, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")

    try:
        return Retrying(stop=stop_after_attempt(3), wait=wait_fixed(0.2), retry=retry_if_exception_type(_LostOutput),
                        reraise=True)(once)
    except _LostOutput:
        return 0, "", ""
