"""The plan's JSON Schema, and its errors turned into messages that say the fix."""
from __future__ import annotations

import datetime
import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from orchestrator.plan import PlanIssue
from orchestrator.planfile.yamlreader import describe_value, line_of, short
from orchestrator.units import parse_duration


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
    msg = f"must be {' or '.join(_TYPE_NAMES.get(w, w) for w in wants)}, not {describe_value(instance)}"
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
            return [(path + [key], f"{short(key)} is not a {schema['x-kind']} ({schema['x-hint']})")]
        hint = _PATTERN_HINTS.get(schema.get("pattern", ""), f"is not allowed as a key here (it must match {schema.get('pattern')})")
        return [(path + [key], f"{short(key)} {hint}")]
    if v in ("pattern", "type") and "x-hint" in schema:
        if isinstance(inst, str):
            shown = short(inst)
        elif isinstance(inst, (int, float)) and not isinstance(inst, bool):
            shown = repr(inst)  # cpus: 0.75 → "0.75 is not a CPU count (use a quoted decimal …)"
        else:
            shown = describe_value(inst)
        return [(path, f"{shown} is not a {schema['x-kind']} ({schema['x-hint']})")]
    if v == "type":
        return [(path, _type_message(want, inst))]
    if v == "pattern":
        hint = _PATTERN_HINTS.get(want, f"does not have the expected form (it must match {want})")
        return [(path, f"{short(inst)} {hint}")]
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
        return [(path, f"{short(inst) if isinstance(inst, str) else describe_value(inst)} is not one of: {choices}")]
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


def schema_issues(data: Any, plain: Any, file: str) -> list[PlanIssue]:
    issues = []
    for error in _validator().iter_errors(plain):
        for path, msg in _messages(error):
            issues.append(PlanIssue(file, line_of(data, path), "/".join(map(str, path)), msg))
    return issues
