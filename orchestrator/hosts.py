"""Inventories and host access through pyinfra (the only module that imports it).

A `Target` wraps one connected pyinfra host with the few synchronous primitives
the steps need: run a shell command, read a file, write a file atomically,
append to a journal. Every write goes through a temp file, fsync and rename.
"""
from __future__ import annotations

import io
import logging
import shlex
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import HostError, InputError

REQUIRED_HOST_DATA = ("project_dir", "compose_file", "compose_project")


@dataclass
class CommandResult:
    ok: bool
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return "\n".join(x for x in (self.stdout, self.stderr) if x)


@dataclass
class Target:
    """One host of the inventory, connected, with its host data."""

    name: str
    data: dict[str, Any]
    _host: Any = field(repr=False)
    _docker: Any = field(default=None, repr=False)

    # -- commands -----------------------------------------------------------
    def run(self, command: str | list[str], *, timeout: float | None = None) -> CommandResult:
        """Run a shell command (a string, or an argv list that is quoted for sh)."""
        if isinstance(command, list):
            command = " ".join(shlex.quote(c) for c in command)
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["_timeout"] = timeout
        try:
            ok, out = self._host.run_shell_command(command, **kwargs)
        except Exception as exc:  # connector errors: SSH down, timeouts
            raise HostError(f"{self.name}: command failed to run: {exc}") from exc
        return CommandResult(ok, out.stdout, out.stderr)

    def check(self, command: str | list[str], what: str, *, timeout: float | None = None) -> str:
        """Run a command that must succeed; raise HostError naming `what` otherwise."""
        result = self.run(command, timeout=timeout)
        if not result.ok:
            raise HostError(f"{self.name}: {what} failed: {result.output.strip()[-2000:]}")
        return result.stdout

    # -- files --------------------------------------------------------------
    def path(self, relative: str) -> str:
        """A path inside the project directory (relative paths are resolved there)."""
        if relative.startswith("/"):
            return relative
        return str(Path(self.data["project_dir"]) / relative)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path]).ok

    def read_file(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        if not self.exists(path):
            return None
        buf = io.BytesIO()
        try:
            ok = self._host.get_file(path, buf)
        except Exception as exc:
            raise HostError(f"{self.name}: cannot read {path}: {exc}") from exc
        if not ok:
            raise HostError(f"{self.name}: cannot read {path}")
        return buf.getvalue()

    def write_file_atomic(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        """Write via a temp file in the same directory, fsync, rename, fsync the directory.

        The temp file lives next to the destination so the rename is atomic and a
        full disk fails here, before the destination is touched.
        """
        directory = str(Path(path).parent)
        tmp = f"{path}.rollout-tmp"
        self.check(["mkdir", "-p", directory], f"creating {directory}")
        try:
            ok = self._host.put_file(io.BytesIO(data), tmp)
        except Exception as exc:
            ok = False
            err = str(exc)
        else:
            err = ""
        if not ok:
            self.run(["rm", "-f", tmp])
            raise HostError(f"{self.name}: cannot write {tmp} (disk full or no permission?) {err}".strip())
        chmod = f"chmod {mode:o} {shlex.quote(tmp)} && " if mode is not None else self._keep_mode(path, tmp)
        # The size check catches a short write that put_file did not report (ENOSPC on some filesystems).
        size_check = f"test $(wc -c < {shlex.quote(tmp)}) -eq {len(data)}"
        cmd = (
            f"{size_check} && {chmod}sync {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(path)} "
            f"&& sync {shlex.quote(directory)}"
        )
        result = self.run(cmd)
        if not result.ok:
            self.run(["rm", "-f", tmp])
            raise HostError(f"{self.name}: cannot write {path}: {result.output.strip() or 'short write'}")

    @staticmethod
    def _keep_mode(path: str, tmp: str) -> str:
        qp, qt = shlex.quote(path), shlex.quote(tmp)
        return f"{{ test ! -e {qp} || chmod --reference={qp} {qt}; }} && "

    def append_line(self, path: str, line: str, *, after_torn: str | None = None) -> None:
        """Append one line and fsync it (the journal's write-ahead primitive).

        A last line without its newline was torn by a crash mid-write: it is ended
        first (and `after_torn`, a line that marks it, appended), so the new line
        is never glued onto the torn one.
        """
        if "\n" in line or "\n" in (after_torn or ""):
            raise ValueError("journal lines must not contain newlines")
        directory = str(Path(path).parent)
        qp = shlex.quote(path)
        mark = f"printf '\\n%s\\n' {shlex.quote(after_torn)}" if after_torn else "printf '\\n'"
        cmd = (
            f"umask 077 && mkdir -p {shlex.quote(directory)} && "
            f"{{ test ! -s {qp} || test -z \"$(tail -c 1 {qp})\" || {mark} >> {qp}; }} && "
            f"printf '%s\\n' {shlex.quote(line)} >> {qp} && sync {qp}"
        )
        result = self.run(cmd)
        if not result.ok:
            raise HostError(f"{self.name}: cannot append to journal {path}: {result.output.strip()}")

    def list_dir(self, path: str) -> list[str]:
        result = self.run(f"ls -1 {shlex.quote(path)} 2>/dev/null")
        return [x for x in result.stdout.splitlines() if x] if result.ok else []

    # -- docker -------------------------------------------------------------
    @property
    def docker(self):
        """A docker SDK client for this host's engine (local socket, or over SSH)."""
        if self._docker is None:
            import docker

            try:
                if self.data.get("docker_host"):  # e.g. tcp://host:2376 or unix:///var/run/docker.sock
                    client = docker.DockerClient(base_url=self.data["docker_host"], timeout=120)
                elif self.is_local:
                    client = docker.from_env(timeout=120)
                else:
                    user = self.data.get("ssh_user")
                    port = self.data.get("ssh_port", 22)
                    hostname = self.data.get("ssh_hostname", self.name)
                    userpart = f"{user}@" if user else ""
                    client = docker.DockerClient(
                        base_url=f"ssh://{userpart}{hostname}:{port}", use_ssh_client=True, timeout=120
                    )
                client.ping()
            except Exception as exc:
                raise HostError(f"{self.name}: the Docker engine is unreachable: {exc}") from exc
            self._docker = client
        return self._docker

    @property
    def is_local(self) -> bool:
        return self.name.startswith("@local")


def write_local_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically write a file on the controller (temp file, fsync, rename)."""
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Inventory:
    path: Path
    groups: dict[str, list[str]]
    host_data: dict[str, dict[str, Any]]

    def hosts_in(self, group: str, limit: tuple[str, ...] = ()) -> list[str]:
        if group not in self.groups:
            raise InputError(
                f"{self.path}: no group '{group}' (groups: {', '.join(sorted(self.groups)) or 'none'})",
                key="hosts",
            )
        names = self.groups[group]
        if limit:
            unknown = [h for h in limit if h not in names]
            if unknown:
                raise InputError(f"--limit {', '.join(unknown)}: not in group '{group}' ({', '.join(names)})")
            names = [h for h in names if h in limit]
        return names


def load_inventory(path: str | Path) -> Inventory:
    """Load a pyinfra inventory file and check the host data every plan needs."""
    from pyinfra.api import Config, Inventory as PyInventory, State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory_from_files

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: inventory file not found")
    try:
        # pyinfra executes inventory files inside a state context
        with ctx_state.use(State(PyInventory(([], {})), Config())):
            inv = make_inventory_from_files(str(path))
    except Exception as exc:  # the inventory is Python: report its error (and line), not ours
        cause = getattr(exc, "exception", exc)  # pyinfra_cli wraps the inventory's own errors
        tb = traceback.extract_tb(getattr(cause, "_traceback", None) or cause.__traceback__)
        frames = [f for f in tb if Path(f.filename).resolve() == path.resolve()]
        line = frames[-1].lineno if frames else getattr(cause, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise InputError(f"{where}: cannot load inventory: {type(cause).__name__}: {cause}") from exc
    host_data: dict[str, dict[str, Any]] = {}
    for host in inv:
        data = dict(host.data.dict())
        missing = [k for k in REQUIRED_HOST_DATA if not data.get(k)]
        if missing:
            raise InputError(f"{path}: host {host.name}: missing host data {', '.join(missing)}", key=missing[0])
        if not str(data["project_dir"]).startswith("/"):
            raise InputError(f"{path}: host {host.name}: project_dir must be an absolute path", key="project_dir")
        host_data[host.name] = data
    groups = {name: [h.name for h in hosts] for name, hosts in inv.groups.items() if not name.startswith("@")}
    groups.setdefault("all", list(host_data))
    return Inventory(path=path, groups=groups, host_data=host_data)


class Connection:
    """Connects the chosen hosts with pyinfra; use as a context manager."""

    def __init__(self, inventory: Inventory, names: list[str]):
        self.inventory = inventory
        self.names = names
        self.targets: list[Target] = []
        self._state = None

    def __enter__(self) -> list[Target]:
        from pyinfra.api import Config, Inventory as PyInventory, State
        from pyinfra.api.connect import connect_all

        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # its errors reach us as failed connections
        hosts = [(n, self.inventory.host_data[n]) for n in self.names]
        inv = PyInventory((hosts, {}))
        self._state = State(inv, Config())
        connect_all(self._state)
        for name in self.names:
            host = inv.get_host(name)
            if not host.connected:
                raise HostError(f"{name}: cannot connect")
            self.targets.append(Target(name, self.inventory.host_data[name], host))
        return self.targets

    def __exit__(self, *exc) -> None:
        from pyinfra.api.connect import disconnect_all

        for t in self.targets:
            if t._docker is not None:
                t._docker.close()
        if self._state is not None:
            disconnect_all(self._state)
