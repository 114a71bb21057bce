"""Saved plans (`rollout diff PLAN -o FILE.plan.json`, `rollout apply FILE.plan.json`).

A saved plan is the diff an operator reviewed: the plan's exact text, the
inventory it was made with (path and SHA-256: inventories are Python that runs)
and, per host, the fingerprint and changes it expects. `load_saved` checks every
field before anything uses it, so a malformed or edited file is bad input (exit 2)
naming the field, e.g. `day1.plan.json: hosts/@local/fingerprint: missing`.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import journal as jr
from orchestrator.diff import redact_text
from orchestrator.errors import InputError
from orchestrator.inventory import Inventory
from orchestrator.plan import Plan
from orchestrator.preview import HostPreview, previews_json
from orchestrator.steps.base import RunOptions

SAVED_FORMAT = "rollout-saved-plan/2"  # /2: the inventory's sha256 is saved with its path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SavedChange:
    step: str
    kind: str
    target: str
    before: Any
    after: Any


@dataclass(frozen=True)
class SavedHost:
    fingerprint: str
    changes: list[SavedChange]


@dataclass(frozen=True)
class SavedPlan:
    """A saved plan file, every field checked."""

    path: Path
    plan_name: str
    plan_version: int
    plan_sha256: str
    plan_path: str
    plan_text: str
    inventory_path: str
    inventory_sha256: str
    soak: float | None
    soak_every: float | None
    hosts: dict[str, SavedHost]

    def check_inventory(self) -> Path:
        """The saved inventory path, only if the file there is the one the plan was saved with."""
        path = Path(self.inventory_path)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise InputError(f"{self.path}: inventory/path: cannot read {path}: {exc.strerror}; pass -i INVENTORY") from exc
        if digest != self.inventory_sha256:
            raise InputError(
                f"{self.path}: inventory/sha256: {path} has changed since the plan was saved "
                f"(sha256 {digest[:12]}…, saved {self.inventory_sha256[:12]}…); an inventory is Python that runs, "
                "so it is not loaded: review it and pass it with -i, or make a new saved plan with `rollout diff`")
        return path

    def moved_on(self, pv: HostPreview) -> list[str]:
        """What changed on a host since its saved preview was made ([] when nothing did)."""
        saved = self.hosts.get(pv.target.name)
        if saved is None:
            return [f"not in the saved plan (saved for {', '.join(self.hosts) or 'no host'})"]
        return moved_on(saved, pv)

    def refuse_if_moved_on(self, previews: list[HostPreview]) -> None:
        """InputError naming what moved on each host that did, before anything is asked or changed."""
        problems = [f"{pv.target.name}: {m}" for pv in previews for m in self.moved_on(pv)]
        if problems:
            raise InputError("the hosts moved on since the plan was saved; make a new one with `rollout diff`:\n  "
                             + "\n  ".join(problems))


def save_previews(plan: Plan, inventory: Inventory, previews: list[HostPreview], options: RunOptions) -> dict[str, Any]:
    """A saved plan carries the plan's exact text, so it must hold no literal secret."""
    secret_lines = [i for i, (a, b) in enumerate(zip(plan.text.split("\n"), redact_text(plan.text).split("\n")), 1) if a != b]
    if secret_lines:
        raise InputError(f"{plan.path}:{secret_lines[0]}: the plan holds a literal secret value; a saved plan would store it. "
                         "Put it in the inventory and write {{ host.data.KEY }} instead")
    inventory_path = inventory.path.resolve()
    return {
        "format": SAVED_FORMAT,
        "created": jr.now(),
        "by": jr.who(),
        "plan": {"name": plan.name, "version": plan.version, "sha256": plan.sha256, "path": str(plan.path),
                 "text": plan.text},
        "inventory": {"path": str(inventory_path), "sha256": hashlib.sha256(inventory_path.read_bytes()).hexdigest()},
        "options": {"soak": options.soak, "soak_every": options.soak_every},
        "hosts": previews_json(previews),
    }


class _Fields:
    """Reads a JSON document field by field; a bad field is an InputError naming its path."""

    def __init__(self, file: Path):
        self.file = file

    def fail(self, where: str, message: str) -> InputError:
        return InputError(f"{self.file}: {where}: {message}", key=where)

    def get(self, obj: dict[str, Any], where: str, key: str, types: type | tuple[type, ...],
            *, optional: bool = False) -> Any:
        path = f"{where}/{key}" if where else key
        if key not in obj:
            if optional:
                return None
            raise self.fail(path, "missing")
        value = obj[key]
        if value is None and optional:
            return None
        # bool is an int in Python, never a number or a string here
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(path, f"must be {_type_name(types)}, not {json.dumps(value)}")
        if not isinstance(value, types):
            raise self.fail(path, f"must be {_type_name(types)}, not {_json_type(value)}")
        return value

    def sha256(self, obj: dict[str, Any], where: str, key: str = "sha256") -> str:
        value = self.get(obj, where, key, str)
        if not _SHA256.match(value):
            raise self.fail(f"{where}/{key}", "must be 64 lowercase hex digits (a SHA-256)")
        return value


def _type_name(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list", bool: "true or false"}
    types = types if isinstance(types, tuple) else (types,)
    if int in types and float in types:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in types)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def load_saved(path: Path) -> SavedPlan:
    """Read and check a saved plan file; every problem is an InputError naming the field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a saved plan ({exc})") from exc
    f = _Fields(path)
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a saved plan (a JSON object is expected; make one with `rollout diff PLAN -o FILE`)")
    if raw.get("format") != SAVED_FORMAT:
        raise InputError(f"{path}: format: not a saved plan of this version (format must be {SAVED_FORMAT}, "
                         f"found {json.dumps(raw.get('format'))}); make a new one with `rollout diff PLAN -o FILE`",
                         key="format")
    plan = f.get(raw, "", "plan", dict)
    text = f.get(plan, "plan", "text", str)
    plan_sha = f.sha256(plan, "plan")
    if hashlib.sha256(text.encode()).hexdigest() != plan_sha:
        raise f.fail("plan/text", "does not match plan/sha256 (edited by hand?)")
    name = f.get(plan, "plan", "name", str)
    version = f.get(plan, "plan", "version", int)
    plan_path = f.get(plan, "plan", "path", str)
    inventory = f.get(raw, "", "inventory", dict)
    inventory_path = f.get(inventory, "inventory", "path", str)
    inventory_sha = f.sha256(inventory, "inventory")
    options = f.get(raw, "", "options", dict)
    soak = f.get(options, "options", "soak", (int, float), optional=True)
    soak_every = f.get(options, "options", "soak_every", (int, float), optional=True)
    for key, value in (("soak", soak), ("soak_every", soak_every)):
        if value is not None and value <= 0:
            raise f.fail(f"options/{key}", "must be greater than zero")
    hosts: dict[str, SavedHost] = {}
    for host, body in f.get(raw, "", "hosts", dict).items():
        where = f"hosts/{host}"
        if not isinstance(body, dict):
            raise f.fail(where, f"must be an object, not {_json_type(body)}")
        fingerprint = f.sha256(body, where, "fingerprint")
        changes = []
        for i, change in enumerate(f.get(body, where, "changes", list)):
            at = f"{where}/changes/{i}"
            if not isinstance(change, dict):
                raise f.fail(at, f"must be an object, not {_json_type(change)}")
            for key in ("before", "after"):
                if key not in change:
                    raise f.fail(f"{at}/{key}", "missing")
            changes.append(SavedChange(step=f.get(change, at, "step", str), kind=f.get(change, at, "kind", str),
                                       target=f.get(change, at, "target", str),
                                       before=change["before"], after=change["after"]))
        hosts[host] = SavedHost(fingerprint, changes)
    if not hosts:
        raise f.fail("hosts", "no host (a saved plan is made for at least one)")
    return SavedPlan(path=path, plan_name=name, plan_version=version, plan_sha256=plan_sha, plan_path=plan_path,
                     plan_text=text, inventory_path=inventory_path, inventory_sha256=inventory_sha,
                     soak=soak, soak_every=soak_every, hosts=hosts)


def moved_on(saved: SavedHost, pv: HostPreview) -> list[str]:
    """What changed on a host since its saved preview was made."""
    if saved.fingerprint == pv.fingerprint:
        return []
    old = {(c.step, c.kind, c.target): c for c in saved.changes}
    new = {(c.step, c.kind, c.target): c for c in pv.changes}
    out = []
    for key in sorted(set(old) | set(new)):
        o, n = old.get(key), new.get(key)
        if o is None:
            out.append(f"{key[0]} {key[2]}: now also changes ({n.summary})")
        elif n is None:
            out.append(f"{key[0]} {key[2]}: no longer needs a change (already as planned?)")
        elif o.before != n.before or o.after != n.after:
            out.append(f"{key[0]} {key[2]}: live state differs from when the plan was saved ({n.summary})")
    return out or ["the host's state differs from when the plan was saved"]
