"""A hardened YAML reader for plan files (ruamel): limits, plain tags only, lines of every value.

Before ruamel constructs anything, the event stream is scanned: a file too large,
too deep, too wide, with duplicate keys, anchors/aliases or tags that construct
objects is refused with the line of the offending value.
"""
from __future__ import annotations

import datetime
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent,
                                SequenceStartEvent)
from ruamel.yaml.reader import Reader

from orchestrator.plan import PlanIssue

MAX_PLAN_BYTES = 1024 * 1024
MAX_DEPTH = 32  # nesting levels
MAX_ITEMS = 1000  # items of one list, keys of one mapping
MAX_NODES = 20_000  # values in the whole file (real plans hold hundreds): parsing stays under a second
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
# Explicit tags a plan may carry: the core schema's plain data. Everything else
# (!!python/…, !!binary, !!timestamp, !!set, !!omap, !custom) constructs objects.
PLAIN_TAGS = {f"{YAML_TAG_PREFIX}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


_MISSING = object()


def line_of(data: Any, path: list[Any]) -> int | None:
    """1-based line of the deepest node of `path` that exists in the ruamel document."""
    line = None
    node = data
    for part in path:
        try:
            if isinstance(part, int) and hasattr(node, "lc") and isinstance(node, list):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            elif hasattr(node, "lc") and isinstance(node, dict):
                # Paths hold keys as strings (see plain_data); the document may hold `5:` as an int.
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


def plain_data(data: Any) -> Any:
    """ruamel's CommentedMap/Seq/scalar types → plain dict/list/str/int."""
    if isinstance(data, dict):
        return {str(k): plain_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain_data(v) for v in data]
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


def short(value: str, limit: int = 60) -> str:
    """repr of a string, cut to `limit` characters (a 10 000-character value is not echoed back)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}…' ({len(value)} characters)"


def describe_value(value: Any) -> str:
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
        return f"the string {short(value)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the date {value.isoformat()}"
    return f"a {type(value).__name__}"


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
                # A mapping's value is reported at its key's line (as line_of does).
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


def parse_yaml(raw: bytes, file: str) -> tuple[Any, list[PlanIssue]]:
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
        return None, [PlanIssue(file, 1, "", f"a plan is a mapping (plan:, version:, steps: …), not {describe_value(data)}")]
    return data, []
