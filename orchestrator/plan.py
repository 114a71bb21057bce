"""Plan files: YAML (ruamel) → JSON Schema → semantic checks → typed `Plan`.

Every error carries the file, the line, the path inside the document and the
fix, e.g. ``plans/day1.yaml:14: steps/0/compose_limits/limits/memory: '1Gb' is
not a size (use 512M or 1G)``. All errors of a file are collected, not just
the first.
"""
from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent,
                                 SequenceStartEvent)
from ruamel.yaml.reader import Reader

from orchestrator.errors import InputError

MAX_PLAN_BYTES = 1024 * 1024
MAX_DEPTH = 32  # nesting levels
MAX_ITEMS = 1000  # items of one list, keys of one mapping
MAX_NODES = 20_000  # values in the whole file (real plans hold hundreds): parsing stays under a second
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
# Explicit tags a plan may carry: the core schema's plain data. Everything else
# (!!python/…, !!binary, !!timestamp, !!set, !!omap, !custom) constructs objects.
PLAIN_TAGS = {f"{YAML_TAG_PREFIX}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
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
    # Line of each key of the body, so a host-level error about `destination`
    # can point at plans/x.yaml:LINE: steps/N/KIND/destination.
    key_lines: dict[str, int] = field(default_factory=dict)

    def location(self, file: str | Path, key: str | None = None) -> str:
        """`FILE:LINE: steps/N/KIND[/KEY]` for messages about this step (or one of its keys)."""
        if key is not None and key in self.key_lines:
            return f"{file}:{self.key_lines[key]}: steps/{self.index}/{self.kind}/{key}"
        return f"{file}:{self.line}: steps/{self.index}/{self.kind}" if self.line else f"{file}: steps/{self.index}/{self.kind}"


@dataclass
class ProbeSpec:
    kind: str
    body: dict[str, Any]
    where: str  # e.g. "validate/0"
    line: int | None = None  # of the probe's kind key
    key_lines: dict[str, int] = field(default_factory=dict)

    def location(self, file: str | Path, key: str | None = None) -> str:
        """`FILE:LINE: validate/N/KIND[/KEY]` for host-level errors about this probe (or one of its keys)."""
        if key is not None and self.key_lines.get(key):
            return f"{file}:{self.key_lines[key]}: {self.where}/{self.kind}/{key}"
        return f"{file}:{self.line}: {self.where}/{self.kind}" if self.line else f"{file}: {self.where}/{self.kind}"


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
    m = re.fullmatch(r"(-?[0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 30s, 5m or 4h)")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_size(text: str) -> int:
    """'512M' / '50MB' / '1GiB' → bytes (binary units, as compose and docker do)."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT])(?:i?B)?", text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a size (use 512M or 1G)")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2)])


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def render(value: Any, host_data: dict[str, Any], _path: tuple[Any, ...] = ()) -> Any:
    """Replace `{{ host.data.KEY }}` in every string of a (nested) value."""
    if isinstance(value, str):
        where = f" in {'/'.join(map(str, _path))}" if _path else ""

        def sub(m: re.Match) -> str:
            expr = TEMPLATE_EXPR.match(m.group(1))
            if not expr:
                raise InputError(f"unsupported template {m.group(0)!r}{where} (only {{{{ host.data.KEY }}}})",
                                 key=str(_path[-1]) if _path else None)
            key = expr.group(1)
            if key not in host_data:
                known = ", ".join(sorted(map(str, host_data))) or "none"
                raise InputError(f"template {m.group(0)!r}{where}: the host has no data '{key}' "
                                 f"(add it to the inventory; the host has: {known})",
                                 key=str(_path[0]) if _path else None)  # the plan's key, so the error names its line
            return str(host_data[key])

        return TEMPLATE.sub(sub, value)
    if isinstance(value, dict):
        return {k: render(v, host_data, _path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, host_data, _path + (i,)) for i, v in enumerate(value)]
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


_MISSING = object()


def _line_of(data: Any, path: list[Any]) -> int | None:
    """1-based line of the deepest node of `path` that exists in the ruamel document."""
    line = None
    node = data
    for part in path:
        try:
            if isinstance(part, int) and hasattr(node, "lc") and isinstance(node, list):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            elif hasattr(node, "lc") and isinstance(node, dict):
                # Paths hold keys as strings (see _plain); the document may hold `5:` as an int.
                key = part if part in node else next((k for k in node if str(k) == str(part)), _MISSING)
                if key is _MISSING:
                    break
                line = node.lc.key(key)[0] + 1
                node = node[key]
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
    if isinstance(data, TaggedScalar):  # an explicit !!str (every other tag is refused earlier)
        return str(data.value)
    if isinstance(data, bool) or data is None:
        return data
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    if isinstance(data, str):
        return str(data)
    return data


def _short(value: str, limit: int = 60) -> str:
    """repr of a string, cut to `limit` characters (a 10 000-character value is not echoed back)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}…' ({len(value)} characters)"


def _what(value: Any) -> str:
    """How a YAML value reads in a message: 'the string '1'', 'a mapping', 'empty (no value)'."""
    if value is None:
        return "empty (no value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the date {value.isoformat()}"
    return f"a {type(value).__name__}"


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "empty"}

# Hints for schema patterns that carry no x-hint of their own.
_PATTERN_HINTS = {
    "^/": "must be an absolute path inside the image (starting with /)",
    "^https?://": "must be an http:// or https:// URL",
    "^rediss?://": "must be a redis:// or rediss:// URL",
    "^[A-Za-z_][A-Za-z0-9_]{0,127}$": "is not an environment variable name (letters, digits and _, not starting with a digit)",
    "^[a-z][a-z0-9-]{0,63}$": "is not a Redis config key (lower-case letters, digits and -, e.g. maxmemory-policy)",
}


def _type_message(want: Any, instance: Any) -> str:
    wants = want if isinstance(want, list) else [want]
    msg = f"must be {' or '.join(_TYPE_NAMES.get(w, w) for w in wants)}, not {_what(instance)}"
    if "string" in wants and isinstance(instance, (bool, int, float, datetime.date)):
        shown = str(instance).lower() if isinstance(instance, bool) else (
            instance.isoformat() if isinstance(instance, datetime.date) else str(instance))
        msg += f" (quote it: \"{shown}\")"
    elif "integer" in wants and isinstance(instance, str) and instance.strip().lstrip("-").isdigit():
        msg += f" (write {instance.strip()} without quotes)"
    elif "boolean" in wants and isinstance(instance, str):
        msg += " (write true or false, without quotes)"
    return msg


def _messages(error: jsonschema.ValidationError) -> list[tuple[list[Any], str]]:
    """Human messages, and the path each belongs to, for one schema error."""
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    v, want, inst = error.validator, error.validator_value, error.instance
    defs = load_schema()["$defs"]
    if "propertyNames" in error.schema_path:  # a bad key name: point at the key itself
        key = str(inst)
        if "x-hint" in schema:
            return [(path + [key], f"{_short(key)} is not a {schema['x-kind']} ({schema['x-hint']})")]
        hint = _PATTERN_HINTS.get(schema.get("pattern", ""), f"is not allowed as a key here (it must match {schema.get('pattern')})")
        return [(path + [key], f"{_short(key)} {hint}")]
    if v in ("pattern", "type") and "x-hint" in schema:
        if isinstance(inst, str):
            shown = _short(inst)
        elif isinstance(inst, (int, float)) and not isinstance(inst, bool):
            shown = repr(inst)  # cpus: 0.75 → "0.75 is not a CPU count (use a quoted decimal …)"
        else:
            shown = _what(inst)
        return [(path, f"{shown} is not a {schema['x-kind']} ({schema['x-hint']})")]
    if v == "type":
        return [(path, _type_message(want, inst))]
    if v == "pattern":
        hint = _PATTERN_HINTS.get(want, f"does not have the expected form (it must match {want})")
        return [(path, f"{_short(inst)} {hint}")]
    if v == "additionalProperties" and isinstance(inst, dict):
        props = schema.get("properties", {})
        out = []
        is_step, is_probe = schema == defs["step"], schema == defs["probe"]
        for key in (k for k in inst if k not in props):
            choices, label = sorted(props), "allowed"
            if is_step or is_probe:
                choices, label = [k for k in choices if k != "id"], "known kinds"
                has_kind = any(k in props and k != "id" for k in inst)
                if is_step and has_kind:
                    msg = f"unknown key '{key}' in a step (a step holds an optional id and exactly one kind)"
                    out.append((path + [key], msg))
                    continue
                msg = f"unknown {'step' if is_step else 'probe'} kind '{key}'"
            else:
                msg = f"unknown key '{key}'"
            close = difflib.get_close_matches(key, choices, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            msg += f" ({hint}{label}: {', '.join(choices)})" if choices else " (no keys are allowed here)"
            out.append((path + [key], msg))
        return out
    if v == "required":
        missing = re.match(r"'(.*)' is a required property", error.message)
        return [(path, f"missing required key '{missing.group(1) if missing else error.message}'")]
    if v == "enum":
        choices = ", ".join(str(w).lower() if isinstance(w, bool) else str(w) for w in want)
        return [(path, f"{_short(inst) if isinstance(inst, str) else _what(inst)} is not one of: {choices}")]
    if v == "anyOf" and schema.get("anyOf") and all("required" in s for s in schema["anyOf"]):
        keys = [s["required"][0] for s in schema["anyOf"]]
        return [(path, f"nothing to change: give at least one of {', '.join(keys)}")]
    if v in ("maxProperties", "minProperties") and schema == defs["probe"]:
        return [(path, f"a probe has exactly one kind (one of: {', '.join(sorted(schema['properties']))})")]
    if v in ("minProperties", "minItems", "minLength") and not inst:
        props = sorted(schema.get("properties", {}))
        return [(path, "must not be empty" + (f" (give at least one of: {', '.join(props)})" if props else ""))]
    if v == "maxLength":
        return [(path, f"too long: {len(inst)} characters (at most {want})")]
    if v == "maxItems":
        return [(path, f"too many items: {len(inst)} (at most {want})")]
    if v == "maxProperties":
        return [(path, f"too many keys: {len(inst)} (at most {want})")]
    if v == "uniqueItems" and isinstance(inst, list):
        seen, dups = [], []
        for item in inst:
            (dups if item in seen and item not in dups else seen).append(item)
        return [(path, f"lists {', '.join(map(repr, dups))} more than once (each item may appear once)")]
    if v == "minimum":
        return [(path, f"must be at least {want}, not {inst}")]
    if v == "exclusiveMinimum":
        return [(path, f"must be greater than {want}, not {inst}")]
    if v == "maximum":
        return [(path, f"must be at most {want}, not {inst}")]
    if v == "exclusiveMaximum":
        return [(path, f"must be less than {want}, not {inst}")]
    return [(path, error.message[:300])]


def _issues_from_schema(data: Any, plain: Any, file: str) -> list[PlanIssue]:
    issues = []
    for error in _validator().iter_errors(plain):
        for path, msg in _messages(error):
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


class _Frame:
    __slots__ = ("kind", "path", "line", "expect_key", "key", "index", "seen")

    def __init__(self, kind: str, path: list[Any], line: int):
        self.kind, self.path, self.line = kind, path, line
        self.expect_key, self.key, self.index = True, None, 0
        self.seen: dict[str, int] = {}


def _scan(text: str, file: str) -> tuple[list[PlanIssue], dict[int, str]]:
    """Walk the YAML event stream (no objects are built, aliases are not expanded).

    Reports, with the path of each: aliases and anchors, tags that are not plain
    data, duplicate keys (all of them, with the line of the first), nesting
    deeper than MAX_DEPTH, and YAML syntax errors. Also returns the path of the
    first value on each line (used to name the key of a bad byte).
    """
    issues: list[PlanIssue] = []
    line_paths: dict[int, str] = {}
    stack: list[_Frame] = []
    alias_lines: set[int] = set()
    nodes = 0

    def advance() -> None:
        if stack:
            top = stack[-1]
            if top.kind == "map":
                top.expect_key = not top.expect_key
            else:
                top.index += 1

    yaml = YAML(typ="rt")
    try:
        for ev in yaml.parse(text):
            if isinstance(ev, (MappingEndEvent, SequenceEndEvent)):
                stack.pop()
                advance()
                continue
            if not isinstance(ev, (ScalarEvent, AliasEvent, MappingStartEvent, SequenceStartEvent)):
                continue
            line = ev.start_mark.line + 1
            nodes += 1
            if nodes > MAX_NODES:
                issues.append(PlanIssue(file, line, "", f"the file holds more than {MAX_NODES} values; a plan is far smaller"))
                return issues, line_paths
            if stack and (stack[-1].index if stack[-1].kind == "seq" else len(stack[-1].seen)) >= MAX_ITEMS:
                top = stack[-1]
                what = "items" if top.kind == "seq" else "keys"
                issues.append(PlanIssue(file, top.line, "/".join(map(str, top.path)), f"too many {what}: more than {MAX_ITEMS}"))
                return issues, line_paths
            is_key = False
            if not stack:
                path: list[Any] = []
            elif stack[-1].kind == "map":
                is_key = stack[-1].expect_key
                path = stack[-1].path if is_key else stack[-1].path + [stack[-1].key]
            else:
                path = stack[-1].path + [stack[-1].index]
            where = "/".join(map(str, path))
            if not is_key:
                line_paths.setdefault(line, where)
            if isinstance(ev, AliasEvent) or ev.anchor:
                if line not in alias_lines:
                    alias_lines.add(line)
                    sign = "*" if isinstance(ev, AliasEvent) else "&"
                    issues.append(PlanIssue(file, line, where, f"YAML anchors and aliases ({sign}{ev.anchor}) are not "
                                                               "allowed in plans (write the value out)"))
            tag = getattr(ev, "tag", None)
            if tag is not None and tag not in PLAIN_TAGS:
                shown = "!!" + tag[len(YAML_TAG_PREFIX):] if tag.startswith(YAML_TAG_PREFIX) else tag
                issues.append(PlanIssue(file, line, where, f"YAML tag {shown} is not allowed (plans hold plain "
                                                           "strings, numbers, lists and mappings; remove the tag)"))
            if is_key:
                key = ev.value if isinstance(ev, ScalarEvent) else "<complex key>"
                top = stack[-1]
                if isinstance(ev, ScalarEvent) and key in top.seen:
                    issues.append(PlanIssue(file, line, "/".join(map(str, top.path + [key])),
                                            f"duplicate key (first at line {top.seen[key]}; each key may appear once)"))
                else:
                    top.seen.setdefault(key, line)
                top.key = key
            if isinstance(ev, (MappingStartEvent, SequenceStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    issues.append(PlanIssue(file, line, where, f"nested more than {MAX_DEPTH} levels deep"))
                    return issues, line_paths
                # A mapping's value is reported at its key's line (as _line_of does).
                own = stack[-1].seen.get(stack[-1].key, line) if stack and stack[-1].kind == "map" else line
                stack.append(_Frame("map" if isinstance(ev, MappingStartEvent) else "seq", path, own))
                continue
            advance()
    except MarkedYAMLError as exc:
        issues.append(_syntax_issue(exc, file))
    except YAMLError as exc:  # the reader's own errors carry no mark
        issues.append(PlanIssue(file, None, "", f"YAML: {exc}"))
    return issues, line_paths


def _syntax_issue(exc: MarkedYAMLError, file: str) -> PlanIssue:
    """A YAML syntax error as an issue at the problem's line, with what was open and a hint."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    msg = f"YAML syntax: {problem}"
    if exc.context and exc.problem and problem.startswith("but "):
        msg = f"YAML syntax: {exc.context.strip()}, {problem}"
    elif exc.context and exc.context_mark and exc.problem:
        msg += f" ({exc.context} at line {exc.context_mark.line + 1})"
    for needle, hint in (
        ("'\\t'", "indent with spaces, not tabs"),
        ("end of stream while scanning a quoted", "close the quote"),
        ("while scanning a quoted", "close the quote"),
        ("flow sequence", "check the [ ] brackets and commas"),
        ("flow mapping", "check the { } braces and commas"),
        ("mapping values are not allowed", "put a space after ':' or quote the value"),
        ("block", "check the indentation"),
        ("single document", "a plan is one YAML document: remove the extra '---'"),
    ):
        if needle in msg:
            msg += f"; {hint}"
            break
    return PlanIssue(file, line, "", msg)


def _parse(raw: bytes, file: str) -> tuple[Any, list[PlanIssue]]:
    """Bytes → ruamel document, rejecting what a plan must never contain."""
    if len(raw) > MAX_PLAN_BYTES:
        return None, [PlanIssue(file, None, "", f"the file is {len(raw)} bytes; a plan is at most "
                                                f"{MAX_PLAN_BYTES} bytes (1 MiB)")]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [PlanIssue(file, 1, "", "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        _, line_paths = _scan(raw.decode("utf-8", errors="replace"), file)
        return None, [PlanIssue(file, line, line_paths.get(line, ""),
                                f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {column}; save the file as UTF-8")]
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        return None, [PlanIssue(file, 1, "", "the file is empty; a plan needs plan, version, title, hosts and steps")]
    bad = Reader.NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        _, line_paths = _scan(Reader.NON_PRINTABLE.sub(" ", text), file)
        return None, [PlanIssue(file, line, line_paths.get(line, ""),
                                f"control character U+{ord(bad.group()):04X} at column {column} is not allowed "
                                "(a plan is plain text)")]
    issues, _ = _scan(text, file)
    if issues:
        return None, sorted(issues, key=lambda i: (i.line or 0, i.path))
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except DuplicateKeyError as exc:  # _scan reports these with their path; kept as a safety net
        mark = exc.problem_mark
        key = re.search(r'found duplicate key "([^"]*)"', str(exc))
        return None, [PlanIssue(file, mark.line + 1 if mark else None, key.group(1) if key else "",
                                "duplicate key (each key may appear once)")]
    except MarkedYAMLError as exc:
        return None, [_syntax_issue(exc, file)]
    if data is None:  # only `---` or `null`
        return None, [PlanIssue(file, 1, "", "the file is empty; a plan needs plan, version, title, hosts and steps")]
    if not isinstance(data, dict):
        return None, [PlanIssue(file, 1, "", f"a plan is a mapping (plan:, version:, steps: …), not {_what(data)}")]
    return data, []


def load_plan(path: str | Path, display: str | None = None) -> Plan:
    """Load and check a plan; raise PlanInvalid listing every issue."""
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
    schema_issues = _issues_from_schema(data, plain, file)
    issues = schema_issues + _check_templates(plain, [], data, file)

    def semantic(checker: Any, body: Any, base: list[Any]) -> None:
        """A kind's own checks (check_spec); its sub-paths are relative to `base`."""
        if not isinstance(body, dict):
            return
        try:
            found = checker.check_spec(body)
        except Exception:
            prefix = "/".join(map(str, base))
            if any(i.path == prefix or i.path.startswith(prefix + "/") for i in schema_issues):
                return  # a malformed body the schema already reported
            raise
        for sub, msg in found:
            sub_path = base + list(sub)
            issues.append(PlanIssue(file, _line_of(data, sub_path), "/".join(map(str, sub_path)), msg))

    steps: list[StepSpec] = []
    seen_ids: dict[str, int] = {}
    raw_steps = plain.get("steps")
    for i, step in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if not isinstance(step, dict):
            continue
        where = f"steps/{i}"
        kinds = [k for k in step if k != "id"]
        known = [k for k in kinds if k in STEPS]
        if len(known) != 1:
            if not kinds or len(known) > 1:  # unknown kinds alone are reported by the schema
                msg = "the step has no kind" if not kinds else f"one step, one kind: found {', '.join(known)}"
                issues.append(PlanIssue(file, _line_of(data, ["steps", i]), where,
                                        f"{msg} (one of: {', '.join(sorted(STEPS))})"))
            continue
        kind = known[0]
        step_id = str(step.get("id") or f"{i + 1}-{kind}")
        if step_id in seen_ids:
            issues.append(PlanIssue(file, _line_of(data, ["steps", i, "id"]), f"{where}/id",
                                    f"duplicate step id '{step_id}' (also steps/{seen_ids[step_id]}; ids must be unique)"))
        else:
            seen_ids[step_id] = i
        body = step[kind]
        semantic(STEPS[kind], body, ["steps", i, kind])
        if kind == "check" and isinstance(body, dict) and len(body) == 1:
            probe_kind, probe_body = next(iter(body.items()))
            if probe_kind in PROBES:
                semantic(PROBES[probe_kind], probe_body, ["steps", i, "check", probe_kind])
        body = body if isinstance(body, dict) else {}
        key_lines = {k: _line_of(data, ["steps", i, kind, k]) or 0 for k in body}
        steps.append(StepSpec(i, step_id, kind, body, _line_of(data, ["steps", i]), key_lines))

    probes: list[ProbeSpec] = []
    raw_probes = plain.get("validate")
    for i, probe in enumerate(raw_probes if isinstance(raw_probes, list) else []):
        if isinstance(probe, dict) and len(probe) == 1:
            kind, body = next(iter(probe.items()))
            if kind in PROBES:
                semantic(PROBES[kind], body, ["validate", i, kind])
            body = body if isinstance(body, dict) else {}
            key_lines = {k: _line_of(data, ["validate", i, kind, k]) or 0 for k in body}
            probes.append(ProbeSpec(kind, body, f"validate/{i}", _line_of(data, ["validate", i, kind]), key_lines))

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
