"""Inventories: pyinfra inventory files read by pyinfra's rules, without importing pyinfra.

Every public module-level list is a group of names or `(name, data)`; a `(hosts, data)`
tuple gives the group's data; `all` and a group named after the file hold every host;
`group_data/GROUP.py` beside the file adds data. `tests/test_local_host.py` holds this to
pyinfra's own answers.
"""
from __future__ import annotations

import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import known_secrets
from orchestrator.errors import InputError

REQUIRED_HOST_DATA = ("project_dir", "compose_file", "compose_project")


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
