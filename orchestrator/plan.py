"""Plan files: YAML (ruamel) → JSON Schema → semantic checks → typed `Plan`.

Every error carries the file, the line, the path inside the document and the
fix, e.g. ``plans/day1.yaml:14: steps/0/compose_limits/limits/memory: '1Gb' is
not a size (use 512M or 1G)``. All errors of a file are collected, not just
the first.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import InputError

MAX_PLAN_BYTES = 1024 * 1024
PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
TEMPLATE_EXPR = re.compile(r"^host\.data\.([A-Za-z_][A-Za-z0-9_]*)$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass
class PlanIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlanInvalid(InputError):
    def __init__(self, issues: list[PlanIssue]):
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass
class StepSpec:
    index: int
    id: str
    kind: str
    body: dict[str, Any]
    line: int | None


@dataclass
class ProbeSpec:
    kind: str
    body: dict[str, Any]
    where: str  # e.g. "validate/0"


@dataclass
class Plan:
    name: str
    version: int
    title: str
    hosts: str
    steps: list[StepSpec]
    validate: list[ProbeSpec]
    on_failure: str
    path: Path
    text: str
    sha256: str = field(default="")

    @property
    def ref(self) -> str:
        return f"{self.name} v{self.version} ({self.sha256[:12]})"


# -- units -------------------------------------------------------------------

def parse_duration(text: str) -> float:
    """'30s' → 30.0 seconds."""
    m = re.fullmatch(r"(-?[0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 30s, 5m or 4h)")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_size(text: str) -> int:
    """'512M' / '50MB' / '1GiB' → bytes (binary units, as compose and docker do)."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT])(?:i?B)?", str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a size (use 512M or 1G)")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2)])


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def render(value: Any, host_data: dict[str, Any]) -> Any:
    """Replace `{{ host.data.KEY }}` in every string of a (nested) value."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            expr = TEMPLATE_EXPR.match(m.group(1))
            if not expr:
                raise InputError(f"unsupported template {m.group(0)!r} (only {{{{ host.data.KEY }}}})")
            key = expr.group(1)
            if key not in host_data:
                raise InputError(f"template {m.group(0)!r}: the host has no data '{key}'", key=key)
            return str(host_data[key])

        return TEMPLATE.sub(sub, value)
    if isinstance(value, dict):
        return {k: render(v, host_data) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, host_data) for v in value]
    return value


# -- schema ------------------------------------------------------------------

@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The plan schema, read from the installed package (works from a wheel)."""
    return json.loads(resources.files("orchestrator").joinpath("data/plan.schema.json").read_text("utf-8"))


def _positive_duration(validator, enabled, instance, schema):
    if enabled and isinstance(instance, str):
        try:
            if parse_duration(instance) <= 0:
                yield jsonschema.ValidationError(f"{instance!r} must be greater than zero")
        except ValueError:
            pass  # the pattern reports it


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Validator:
    schema = load_schema()
    schema["$defs"]["duration"]["x-positive"] = True
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"x-positive": _positive_duration})
    return cls(schema)


# -- loading -----------------------------------------------------------------

def resolve_plan_path(name_or_path: str, base: Path | None = None) -> Path:
    """`day1` → plans/day1.yaml; an existing path is used as it is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        return p
    base = base or Path.cwd()
    candidate = base / "plans" / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise InputError(f"no plan named '{name_or_path}': {candidate} does not exist")
    return candidate


def _walk_nodes(node: Node, seen: set[int]) -> Iterator[tuple[Node, bool]]:
    """Yield (node, is_alias) for every node of a composed document."""
    if id(node) in seen:
        yield node, True
        return
    seen.add(id(node))
    yield node, False
    if isinstance(node, MappingNode):
        for k, v in node.value:
            yield from _walk_nodes(k, seen)
            yield from _walk_nodes(v, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _walk_nodes(item, seen)


def _line_of(data: Any, path: list[Any]) -> int | None:
    """1-based line of the deepest node of `path` that exists in the ruamel document."""
    line = None
    node = data
    for part in path:
        try:
            if isinstance(part, int) and hasattr(node, "lc") and isinstance(node, list):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            elif hasattr(node, "lc") and isinstance(node, dict) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    if line is None and hasattr(data, "lc"):
        line = data.lc.line + 1
    return line


def _plain(data: Any) -> Any:
    """ruamel's CommentedMap/Seq/scalar types → plain dict/list/str/int."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    if isinstance(data, bool) or data is None:
        return data
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    if isinstance(data, str):
        return str(data)
    return data


def _message(error: jsonschema.ValidationError) -> tuple[list[Any], str]:
    """A human message and the path it belongs to, for one schema error."""
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    v = error.validator
    if v == "pattern" and "x-hint" in schema:
        return path, f"{error.instance!r} is not a {schema['x-kind']} ({schema['x-hint']})"
    if v == "type" and "x-hint" in schema:
        return path, f"{error.instance!r} is not a {schema['x-kind']} ({schema['x-hint']})"
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        article = "an" if str(want)[0] in "aeiou" else "a"
        return path, f"must be {article} {want}, not {type(error.instance).__name__} {error.instance!r}"
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in schema.get("properties", {})]
        key = extra[0]
        if "step" in schema.get("description", "") or "probe kind" in schema.get("description", ""):
            what = "step kind" if "step" in schema.get("description", "") else "probe kind"
            kinds = [k for k in allowed if k != "id"]
            return path + [key], f"unknown {what} '{key}' (known: {', '.join(kinds)})"
        return path + [key], f"unknown key '{key}' (allowed: {', '.join(allowed)})"
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return path, f"missing required key '{missing}'"
    if v == "enum":
        return path, f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if v == "propertyNames":
        return path, f"invalid key name: {error.message}"
    if v == "anyOf" and schema.get("anyOf") and all("required" in s for s in schema["anyOf"]):
        keys = [s["required"][0] for s in schema["anyOf"]]
        return path, f"nothing to change: give at least one of {', '.join(keys)}"
    if v in ("maxProperties", "minProperties") and "probe kind" in schema.get("description", ""):
        return path, f"a probe has exactly one kind (one of: {', '.join(sorted(schema['properties']))})"
    if v in ("minProperties", "minItems", "minLength") and not error.instance:
        return path, "must not be empty"
    if v in ("maxLength", "maxItems", "maxProperties"):
        return path, f"too large: {error.message[:200]}"
    return path, error.message[:300]


def _issues_from_schema(data: Any, plain: Any, file: str) -> list[PlanIssue]:
    issues = []
    for error in sorted(_validator().iter_errors(plain), key=lambda e: list(map(str, e.absolute_path))):
        path, msg = _message(error)
        issues.append(PlanIssue(file, _line_of(data, path), "/".join(map(str, path)), msg))
    return issues


def _check_templates(value: Any, path: list[Any], data: Any, file: str) -> list[PlanIssue]:
    issues: list[PlanIssue] = []
    if isinstance(value, str):
        for m in TEMPLATE.finditer(value):
            if not TEMPLATE_EXPR.match(m.group(1)):
                issues.append(PlanIssue(file, _line_of(data, path), "/".join(map(str, path)),
                                        f"unsupported template {m.group(0)!r} (use {{{{ host.data.KEY }}}})"))
    elif isinstance(value, dict):
        for k, v in value.items():
            issues += _check_templates(v, path + [k], data, file)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            issues += _check_templates(v, path + [i], data, file)
    return issues


def _parse(raw: bytes, file: str) -> tuple[Any, list[PlanIssue]]:
    """Bytes → ruamel document, rejecting what a plan must never contain."""
    if len(raw) > MAX_PLAN_BYTES:
        return None, [PlanIssue(file, None, "", f"file is {len(raw)} bytes; a plan is at most {MAX_PLAN_BYTES}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [PlanIssue(file, line, "", f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8")]
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        return None, [PlanIssue(file, 1, "", "the file is empty; a plan needs plan, version, title, hosts and steps")]
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None, [PlanIssue(file, mark.line + 1 if mark else None, "", f"YAML syntax: {exc.problem or exc.context}")]
    issues = []
    for node, is_alias in _walk_nodes(root, set()):
        line = node.start_mark.line + 1
        if is_alias:
            issues.append(PlanIssue(file, line, "", "YAML aliases/anchors are not allowed in plans (write the value out)"))
        elif node.tag not in PLAIN_TAGS and not (isinstance(node, ScalarNode) and node.tag.startswith("tag:yaml.org,2002:") and node.tag.split(":")[-1] in {"timestamp", "binary"}):
            issues.append(PlanIssue(file, line, "", f"YAML tag {node.tag!r} is not allowed (plans hold plain data only)"))
    if issues:
        return None, issues
    try:
        data = yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        key = re.search(r'found duplicate key "([^"]*)"', str(exc))
        return None, [PlanIssue(file, mark.line + 1 if mark else None, key.group(1) if key else "",
                                "duplicate key (each key may appear once)")]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        return None, [PlanIssue(file, mark.line + 1 if mark else None, "", f"YAML: {exc.problem}")]
    if not isinstance(data, dict):
        return None, [PlanIssue(file, 1, "", f"a plan is a mapping (plan:, version:, steps: …), not a {type(data).__name__}")]
    return data, []


def load_plan(path: str | Path, display: str | None = None) -> Plan:
    """Load and check a plan; raise PlanInvalid listing every issue."""
    from orchestrator.probes import PROBES
    from orchestrator.steps import STEPS

    path = Path(path)
    file = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanInvalid([PlanIssue(file, None, "", f"cannot read: {exc.strerror}")]) from exc
    return load_plan_bytes(raw, path, file)


def load_plan_bytes(raw: bytes, path: Path, file: str) -> Plan:
    """Check a plan given as bytes (a saved plan or a run's copy carries its text)."""
    from orchestrator.probes import PROBES
    from orchestrator.steps import STEPS

    data, issues = _parse(raw, file)
    if issues:
        raise PlanInvalid(issues)
    plain = _plain(data)
    issues = _issues_from_schema(data, plain, file)
    issues += _check_templates(plain, [], data, file)

    steps: list[StepSpec] = []
    seen_ids: dict[str, int] = {}
    for i, step in enumerate(plain.get("steps") or []):
        if not isinstance(step, dict):
            continue
        kinds = [k for k in step if k != "id"]
        where = f"steps/{i}"
        if len(kinds) != 1:
            msg = ("the step has no kind" if not kinds else f"one step, one kind: found {', '.join(kinds)}")
            issues.append(PlanIssue(file, _line_of(data, ["steps", i]), where,
                                    f"{msg} (one of: {', '.join(sorted(STEPS))})"))
            continue
        kind = kinds[0]
        step_id = str(step.get("id") or f"{i + 1}-{kind}")
        if step_id in seen_ids:
            issues.append(PlanIssue(file, _line_of(data, ["steps", i, "id"]), f"{where}/id",
                                    f"duplicate step id '{step_id}' (also steps/{seen_ids[step_id]})"))
        seen_ids[step_id] = i
        body = step[kind]
        if kind in STEPS and isinstance(body, dict):
            for sub, msg in STEPS[kind].check_spec(body):
                sub_path = ["steps", i, kind] + sub
                issues.append(PlanIssue(file, _line_of(data, sub_path), "/".join(map(str, sub_path)), msg))
        steps.append(StepSpec(i, step_id, kind, body if isinstance(body, dict) else {}, _line_of(data, ["steps", i])))

    probes: list[ProbeSpec] = []
    for i, probe in enumerate(plain.get("validate") or []):
        if isinstance(probe, dict) and len(probe) == 1:
            kind, body = next(iter(probe.items()))
            if kind in PROBES and isinstance(body, dict):
                for sub, msg in PROBES[kind].check_spec(body):
                    sub_path = ["validate", i, kind] + sub
                    issues.append(PlanIssue(file, _line_of(data, sub_path), "/".join(map(str, sub_path)), msg))
            probes.append(ProbeSpec(kind, body if isinstance(body, dict) else {}, f"validate/{i}"))
    for spec in steps:
        if spec.kind == "check" and len(spec.body) == 1:
            kind, body = next(iter(spec.body.items()))
            if kind in PROBES and isinstance(body, dict):
                for sub, msg in PROBES[kind].check_spec(body):
                    sub_path = ["steps", spec.index, "check", kind] + sub
                    issues.append(PlanIssue(file, _line_of(data, sub_path), "/".join(map(str, sub_path)), msg))

    if issues:
        # Stable order: by line, then path; drop exact repeats.
        unique = {str(i): i for i in issues}
        raise PlanInvalid(sorted(unique.values(), key=lambda i: (i.line or 0, i.path)))

    text = raw.decode("utf-8")
    return Plan(
        name=plain["plan"],
        version=plain["version"],
        title=plain["title"],
        hosts=plain["hosts"],
        steps=steps,
        validate=probes,
        on_failure=plain.get("on_failure", "rollback"),
        path=path,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def threshold_issues(warn: dict | None, fail: dict | None) -> list[tuple[list[Any], str]]:
    """warn must be below fail for every metric both name (shared by watch and stats)."""
    out = []
    for metric, limit in (fail or {}).items():
        w = (warn or {}).get(metric)
        if isinstance(w, (int, float)) and isinstance(limit, (int, float)) and w >= limit:
            out.append((["warn", metric], f"warn {w} must be below fail {limit}"))
    return out
