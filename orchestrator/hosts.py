"""Host access: a `Target` per connected host; SSH hosts through pyinfra (the only module that imports it).

A `Target` wraps one connected host (pyinfra's, or `localhost.LocalHost`) with the few synchronous primitives
the steps need: run a shell command, read a file, write a file atomically,
append to a journal. Every write goes through a temp file, fsync and rename.
"""
from __future__ import annotations

import io
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import HostError
from orchestrator.inventory import Inventory, is_local_name

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
            raise HostError(f"command failed to run: {exc}", host=self.name) from exc
        return CommandResult(ok, out.stdout, out.stderr)

    def check(self, command: str | list[str], what: str, *, timeout: float | None = None) -> str:
        """Run a command that must succeed; raise HostError naming `what` otherwise."""
        result = self.run(command, timeout=timeout)
        if not result.ok:
            raise HostError(f"{what} failed: {result.output.strip()[-2000:]}", host=self.name)
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
            raise HostError(f"cannot read {path}: {exc}", host=self.name) from exc
        if not ok:
            raise HostError(f"cannot read {path}", host=self.name)
        return buf.getvalue()

    def write_file_atomic(self, path: str, data: bytes, *, mode: int | None = None,
                          mode_of: str | None = None) -> None:
        """Write via a temp file in the same directory, fsync, rename, fsync the directory.

        The temp file lives next to the destination so the rename is atomic and a
        full disk fails here, before the destination is touched. It is created empty
        by `mktemp` (O_EXCL, a fresh random name: a symlink planted next to the file is
        never written through) and gets its final mode BEFORE any data is uploaded into
        it, so it is never more readable than the file it becomes, not even for a moment.

        The mode: `mode` when given; else that of `mode_of` (a `.backup` takes the mode of
        the file it copies); else the destination's own; else the host's default (umask).
        """
        directory = str(Path(path).parent)
        name = Path(path).name[:200]  # room for the suffix within NAME_MAX
        qd = shlex.quote(directory)
        created = self.run(  # one round trip: the directory, the temp file and its mode
            f"mkdir -p {qd} && u=$(umask) && umask 077 && tmp=$(mktemp {shlex.quote(f'{directory}/.{name}.rollout-tmp.')}XXXXXX) && "
            f"{{ {self._mode_command(path, mode, mode_of)} || {{ rm -f \"$tmp\"; exit 1; }}; }} && printf '%s\\n' \"$tmp\""
        )
        tmp = created.stdout.strip()
        if not created.ok or not tmp.startswith(f"{directory}/.{name}.rollout-tmp."):
            raise HostError(f"cannot create a temp file next to {path} (disk full or no permission?): "
                            f"{created.output.strip()}", host=self.name)
        qt = shlex.quote(tmp)
        try:
            ok = self._host.put_file(io.BytesIO(data), tmp)  # into the existing file: its mode is kept
        except Exception as exc:
            ok = False
            err = str(exc)
        else:
            err = ""
        if not ok:
            self.run(["rm", "-f", tmp])
            raise HostError(f"cannot write {tmp} (disk full or no permission?) {err}".strip(), host=self.name)
        # The size check catches a short write that put_file did not report (ENOSPC on some filesystems).
        cmd = (
            f"test $(wc -c < {qt}) -eq {len(data)} && sync {qt} && mv -f {qt} {shlex.quote(path)} && sync {qd}"
        )
        result = self.run(cmd)
        if not result.ok:
            self.run(["rm", "-f", tmp])
            raise HostError(f"cannot write {path}: {result.output.strip() or 'short write'}", host=self.name)

    @staticmethod
    def _mode_command(path: str, mode: int | None, mode_of: str | None) -> str:
        """Shell that gives "$tmp" its final mode (mktemp made it 0600)."""
        if mode is not None:
            return f'chmod {mode:o} "$tmp"'
        refs = [r for r in (mode_of, path) if r]
        tests = " ".join(f"elif test -e {shlex.quote(r)}; then chmod \"$(stat -L -c %a {shlex.quote(r)})\" \"$tmp\"; "
                         for r in refs)
        # no reference: what a new file gets from the host's umask (0666 & ~umask, saved in $u)
        default = 'chmod "$(printf %o $((0666 & ~u)))" "$tmp"'
        return f"if false; then :; {tests}else {default}; fi"

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
            raise HostError(f"cannot append to journal {path}: {result.output.strip()}", host=self.name)

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
                raise HostError(f"the Docker engine is unreachable: {exc}", host=self.name) from exc
            self._docker = client
        return self._docker

    @property
    def is_local(self) -> bool:
        return is_local_name(self.name)


def write_local_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically write an output file on the controller (temp file, fsync, rename), scrubbed
    of every known secret value (a saved plan is an output: `known_secrets`)."""
    import os
    import tempfile

    from orchestrator import known_secrets

    text = known_secrets.scrub(text)
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


class Connection:
    """Connects the chosen hosts; use as a context manager.

    `@local` hosts are this machine (orchestrator.localhost, no pyinfra); any
    other host goes through pyinfra's connectors, imported only then.
    """

    def __init__(self, inventory: Inventory, names: list[str]):
        self.inventory = inventory
        self.names = names
        self.targets: list[Target] = []
        self._state = None

    def __enter__(self) -> list[Target]:
        from orchestrator.localhost import LocalHost

        remote = [n for n in self.names if not is_local_name(n)]
        hosts: dict[str, Any] = {n: LocalHost() for n in self.names if is_local_name(n)}
        if remote:
            hosts.update(self._connect_with_pyinfra(remote))
        self.targets = [Target(n, self.inventory.host_data[n], hosts[n]) for n in self.names]
        return self.targets

    def _connect_with_pyinfra(self, names: list[str]) -> dict[str, Any]:
        from pyinfra.api import Config, Inventory as PyInventory, State
        from pyinfra.api.connect import connect_all

        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # its errors reach us as failed connections
        inv = PyInventory(([(n, self.inventory.host_data[n]) for n in names], {}))
        self._state = State(inv, Config())
        connect_all(self._state)
        hosts = {}
        for name in names:
            host = inv.get_host(name)
            if not host.connected:
                raise HostError("cannot connect", host=name)
            hosts[name] = host
        return hosts

    def __exit__(self, *exc) -> None:
        for t in self.targets:
            if t._docker is not None:
                t._docker.close()
        if self._state is not None:
            from pyinfra.api.connect import disconnect_all

            disconnect_all(self._state)
