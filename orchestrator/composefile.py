"""Round-trip edits of compose files with ruamel.yaml.

Comments, quoting, key order and long lines survive: only the targeted values
change. New values take the quote style of the value they replace.
"""
from __future__ import annotations

import io
import shlex
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from orchestrator import known_secrets
from orchestrator.errors import InputError


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) as the file is written.

    ruamel's own guess mixes the two when sequences are indented under their key.
    """
    mapping, offset = None, None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for parent, child in zip(lines, lines[1:]):
        p_ind = len(parent) - len(parent.lstrip())
        c_ind = len(child) - len(child.lstrip())
        if not parent.rstrip().endswith(":") or c_ind <= p_ind:
            continue
        if child.lstrip().startswith("- "):
            offset = c_ind - p_ind if offset is None else offset
        elif mapping is None:
            mapping = c_ind - p_ind
    return mapping or 2, 0 if offset is None else offset


def _yaml(text: str) -> YAML:
    mapping, offset = guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def load(text: str, where: str) -> CommentedMap:
    known_secrets.harvest_text(text)  # before any error could quote a line of it
    try:
        doc = _yaml(text).load(text)
    except Exception as exc:
        raise InputError(f"{where}: not valid YAML: {exc}") from exc
    known_secrets.harvest(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise InputError(f"{where}: no `services:` mapping (is this a compose file?)")
    return doc


def service(doc: CommentedMap, name: str, where: str) -> CommentedMap:
    services = doc["services"]
    if name not in services:
        raise InputError(f"{where}: no service '{name}' (services: {', '.join(services)})", key="service")
    return services[name]


def _styled(old: Any, new: str, *, quote_if_new: bool = False) -> Any:
    """`new` in the quote style of `old`."""
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(new)
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(new)
    if old is None and quote_if_new:
        return SingleQuotedScalarString(new)
    return new


def _child(parent: CommentedMap, key: str) -> CommentedMap:
    if not isinstance(parent.get(key), dict):
        parent[key] = CommentedMap()
    return parent[key]


def patch(text: str, where: str, name: str, *, limits: dict | None = None,
          reservations: dict | None = None, environment: dict | None = None) -> str:
    """The compose text with one service's resources and environment changed."""
    yaml = _yaml(text)
    doc = load(text, where)
    svc = service(doc, name, where)
    for section, values in (("limits", limits), ("reservations", reservations)):
        if not values:
            continue
        res = _child(_child(_child(svc, "deploy"), "resources"), section)
        for key, value in values.items():
            # compose expects cpus as a string; keep it quoted as operators write it
            res[key] = _styled(res.get(key), str(value), quote_if_new=(key == "cpus"))
    if environment:
        env = svc.get("environment")
        if env is None:
            env = svc["environment"] = CommentedMap()
        if isinstance(env, CommentedSeq):
            for key, value in environment.items():
                idx = next((i for i, item in enumerate(env) if str(item).split("=", 1)[0] == key), None)
                if idx is None:
                    env.append(f"{key}={value}")
                else:
                    env[idx] = _styled(env[idx], f"{key}={value}")
        else:
            for key, value in environment.items():
                env[key] = _styled(env.get(key), str(value), quote_if_new=True)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def declared(text: str, where: str, name: str) -> dict[str, Any]:
    """What the compose file asks of one service: limits, reservations, environment."""
    svc = service(load(text, where), name, where)
    res = ((svc.get("deploy") or {}).get("resources") or {})
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(str(item).split("=", 1) if "=" in str(item) else (str(item), None) for item in env)
    return {
        "limits": dict(res.get("limits") or {}),
        "reservations": dict(res.get("reservations") or {}),
        "environment": {str(k): (None if v is None else str(v)) for k, v in env.items()},
        "image": svc.get("image"),
    }


# -- a Redis service's `command:` (`redis-server [FILE] --key value …`) ----------------------


def _command_argv(command: Any) -> list[str] | None:
    """The argv a `command:` stands for (list form, or a string split as compose splits it)."""
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError:
            return None
    if isinstance(command, list):
        return [str(item) for item in command]
    return None


def redis_command(text: str, where: str, name: str) -> list[str] | None:
    """The service's `command:` argv when it runs `redis-server` directly (the only form we
    patch: a `sh -c …` or an image default command is not ours to rewrite); else None."""
    svc = service(load(text, where), name, where)
    argv = _command_argv(svc.get("command"))
    if not argv or argv[0].rsplit("/", 1)[-1] != "redis-server":
        return None
    return argv


def redis_args(argv: list[str]) -> dict[str, list[str]]:
    """`--key value…` pairs of a redis-server argv (a value runs to the next `--key`)."""
    out: dict[str, list[str]] = {}
    key = None
    for arg in argv[1:]:
        if arg.startswith("--") and len(arg) > 2:
            key = arg[2:].lower()
            out[key] = []
        elif key is not None:
            out[key].append(arg)
    return out


def _patched_argv(argv: list[str], settings: dict[str, str]) -> list[str]:
    out, skipping = [argv[0]], False
    todo = dict(settings)
    for arg in argv[1:]:
        if arg.startswith("--") and len(arg) > 2:
            skipping = False
            key = arg[2:].lower()
            if key in todo:
                out += [arg, todo.pop(key)]
                skipping = True  # drop the old value's words
                continue
        elif skipping:
            continue
        out.append(arg)
    for key, value in todo.items():
        out += [f"--{key}", value]
    return out


def patch_redis_command(text: str, where: str, name: str, settings: dict[str, str]) -> str:
    """The compose text with `--key value` set in the service's redis-server `command:`:
    an existing pair is replaced in place, a new one appended; the list or string form and
    its quoting are kept."""
    yaml = _yaml(text)
    doc = load(text, where)
    svc = service(doc, name, where)
    command = svc.get("command")
    argv = _command_argv(command)
    if not argv or argv[0].rsplit("/", 1)[-1] != "redis-server":
        raise InputError(f"{where}: service '{name}' has no redis-server `command:` to patch", key="service")
    new = _patched_argv(argv, settings)
    if new == argv:
        return text
    if isinstance(command, list):
        style = command[0]
        for i, arg in enumerate(new):  # keep the items that did not change as they are written
            if i < len(command) and str(command[i]) == arg:
                continue
            if i < len(command):
                command[i] = _styled(command[i], arg)
            else:
                command.append(_styled(style, arg))
        del command[len(new):]
    else:
        svc["command"] = _styled(command, shlex.join(new))
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()
