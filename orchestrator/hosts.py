"""Inventories and host access through pyinfra (the only module that imports it).

A `Target` wraps one connected pyinfra host with the few synchronous primitives
the steps need: run a shell command, read a file, write a file atomically,
append to a journal. Every write goes through a temp file, fsync and rename.
"""
from __future__ import annotations

import io
import logging
import shlex
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import known_secrets
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


def _exec_python(path: Path) -> dict[str, Any]:
    """Run an inventory (or group data) file and return its module namespace.

    Errors in the file are the operator's: they are reported with the file and line.
    """
    try:
        code = compile(path.read_text("utf-8"), str(path), "exec")
        namespace: dict[str, Any] = {"__file__": str(path), "__name__": f"rollout_inventory_{path.stem}"}
        exec(code, namespace)  # noqa: S102 — an inventory is Python by design, as in pyinfra
    except Exception as exc:  # the inventory is Python: report its error (and line), not ours
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        line = frames[-1].lineno if frames else getattr(exc, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise InputError(f"{where}: cannot load inventory: {type(exc).__name__}: {exc}") from exc
    return namespace


def _host_entries(value: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """A group's hosts as (name, data), or None when the variable is not a group (pyinfra's rule)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        value = value[0]
    if not isinstance(value, list):
        return None
    entries = []
    for item in value:
        if isinstance(item, str):
            entries.append((item, {}))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
            entries.append((item[0], item[1]))
        else:
            return None
    return entries


def _group_data(directories: list[Path]) -> dict[str, dict[str, Any]]:
    """`group_data/<group>.py` files: their public module-level names are that group's data."""
    found: dict[str, dict[str, Any]] = {}
    for directory in directories:
        for file in sorted(directory.glob("*.py")) if directory.is_dir() else []:
            namespace = _exec_python(file)
            found.setdefault(file.stem, {}).update(
                {k: v for k, v in namespace.items()
                 if not k.startswith("_") and not isinstance(v, types.ModuleType) and not callable(v)})
    return found


def load_inventory(path: str | Path) -> Inventory:
    """Load a pyinfra inventory file and check the host data every plan needs.

    The file is read by pyinfra's rules (every public module-level list is a group of
    names or `(name, data)`; a `(hosts, data)` tuple gives the group data; `all` and a
    group named after the file hold every host; `group_data/GROUP.py` beside it adds
    data), without importing pyinfra: a host's data is its own, then its groups' (the
    later group wins), then `all`'s.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: inventory file not found")
    namespace = _exec_python(path)
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    group_vars: dict[str, dict[str, Any]] = {}
    for name, value in namespace.items():
        entries = None if name.startswith("_") else _host_entries(value)
        if entries is not None:
            groups[name] = entries
            group_vars[name] = dict(value[1]) if isinstance(value, tuple) else {}
    if "all" in groups:  # an explicit `all` is the host list (pyinfra drops hosts missing from it)
        all_names = [n for n, _ in groups["all"]]
    else:
        all_names = []
        for entries in groups.values():
            all_names += [n for n, _ in entries if n not in all_names]
    for name, data in _group_data([path.parent / "group_data"]).items():
        group_vars.setdefault(name, {}).update(data)
    own: dict[str, dict[str, Any]] = {n: {} for n in all_names}
    member_of: dict[str, list[str]] = {n: [] for n in all_names}
    for group, entries in [*((g, e) for g, e in groups.items() if g != "all"), ("all", groups.get("all", []))]:
        for name, data in entries:
            if name in own:
                own[name].update(data)
                if group != "all":
                    member_of[name].append(group)
    host_data: dict[str, dict[str, Any]] = {}
    for name in all_names:
        data = dict(group_vars.get("all", {}))
        for group in member_of[name]:
            data.update(group_vars.get(group, {}))
        data.update(own[name])
        missing = [k for k in REQUIRED_HOST_DATA if not data.get(k)]
        if missing:
            raise InputError(f"{path}: host {name}: missing host data {', '.join(missing)}", key=missing[0])
        if not str(data["project_dir"]).startswith("/"):
            raise InputError(f"{path}: host {name}: project_dir must be an absolute path", key="project_dir")
        host_data[name] = data
        known_secrets.harvest(data)  # ssh_password, api_token, a URL's password: hidden in every output
    names_of = {group: names for group, entries in groups.items()
                if (names := [n for n, _ in entries if n in host_data])}  # pyinfra has no empty groups
    names_of.setdefault("all", list(all_names))
    names_of.setdefault(path.stem, list(all_names))
    return Inventory(path=path, groups=names_of, host_data=host_data)


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


def is_local_name(name: str) -> bool:
    """`@local` (pyinfra's name for this machine) and `@local/...` variants."""
    return name == "@local" or name.startswith("@local/")


def prepare_imports_for(inventory: Inventory) -> None:
    """Load the SSH machinery only for an inventory that needs it.

    pyinfra's SSH connector is gevent-based: with a remote host, patch the stdlib as
    pyinfra's own CLI does, before the Docker SDK or requests are imported (the CLI
    imports them only inside commands). Without one, keep the Docker SDK from importing
    paramiko (it does so eagerly, for ssh:// engines, and it costs more than a local
    diff): a None entry in sys.modules makes `import paramiko` fail, which the SDK
    tolerates. So a `@local`-only run never loads gevent, pyinfra or paramiko.
    """
    remote = any(not is_local_name(n) for n in inventory.host_data)
    ssh_engine = any(str(d.get("docker_host", "")).startswith("ssh://") for d in inventory.host_data.values())
    if remote:
        from gevent import monkey

        if not monkey.is_module_patched("socket"):
            monkey.patch_all()
    elif not ssh_engine:
        sys.modules.setdefault("paramiko", None)  # type: ignore[arg-type]
