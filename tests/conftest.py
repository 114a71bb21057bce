"""Shared fixtures: a reachable Docker engine and throwaway MediaNest demo stacks."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator

import docker
import pytest

from helpers import skip_or_fail
from stack import DemoStack  # tests/ is on sys.path (pytest rootdir conftest, no __init__.py)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Fail (CI) or skip (elsewhere) when no Docker engine answers."""
    try:
        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        skip_or_fail(f"Docker engine not reachable ({exc}); start it or set DOCKER_HOST")


@pytest.fixture(scope="session")
def docker_client(docker_engine: None) -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture
def demo_stack(docker_engine: None, tmp_path) -> Iterator[DemoStack]:
    """A running demo stack of its own (project rt<random>, free ports); always torn down."""
    stack = DemoStack(tmp_path)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def tmpfs_stack(docker_engine, tmp_path):
    """A demo stack whose project directory lives on a 2 MiB tmpfs (disk-full faults)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)], check=True)
    stack = DemoStack(mount)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        subprocess.run(["umount", "-l", str(mount)], check=False)
