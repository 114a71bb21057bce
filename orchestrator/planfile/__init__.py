"""Loading plan files: YAML (hardened reader) → JSON Schema → each kind's checks → typed `Plan`.

Every error carries the file, the line, the path inside the document and the
fix, e.g. ``plans/day1.yaml:14: steps/0/compose_limits/limits/memory: '1Gb' is
not a size (use 512M or 1G)``. All errors of a file are collected, not just
the first. This is the only module that imports the step and probe registries.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError
from orchestrator.plan import Plan, PlanInvalid, PlanIssue, ProbeSpec, StepSpec
from orchestrator.planfile.schema import schema_issues
from orchestrator.planfile.yamlreader import line_of, parse_yaml, plain_data
from orchestrator.probes import PROBES
from orchestrator.steps import STEPS
from orchestrator.template import TEMPLATE, TEMPLATE_EXPR


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


def _check_templates(value: Any, path: list[Any], data: Any, file: str) -> list[PlanIssue]:
    issues: list[PlanIssue] = []
    if isinstance(value, str):
        for m in TEMPLATE.finditer(value):
            if not TEMPLATE_EXPR.match(m.group(1)):
                issues.append(PlanIssue(file, line_of(data, path), "/".join(map(str, path)),
                                        f"unsupported template {m.group(0)!r} (use {{{{ host.data.KEY }}}})"))
    elif isinstance(value, dict):
        for k, v in value.items():
            issues += _check_templates(v, path + [k], data, file)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            issues += _check_templates(v, path + [i], data, file)
    return issues


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
    data, issues = parse_yaml(raw, file)
    if issues:
        raise PlanInvalid(issues)
    plain = plain_data(data)
    from_schema = schema_issues(data, plain, file)
    issues = from_schema + _check_templates(plain, [], data, file)

    def semantic(checker: Any, body: Any, base: list[Any]) -> None:
        """A kind's own checks (check_spec); its sub-paths are relative to `base`."""
        if not isinstance(body, dict):
            return
        try:
            found = checker.check_spec(body)
        except Exception:
            prefix = "/".join(map(str, base))
            if any(i.path == prefix or i.path.startswith(prefix + "/") for i in from_schema):
                return  # a malformed body the schema already reported
            raise
        for sub, msg in found:
            sub_path = base + list(sub)
            issues.append(PlanIssue(file, line_of(data, sub_path), "/".join(map(str, sub_path)), msg))

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
                issues.append(PlanIssue(file, line_of(data, ["steps", i]), where,
                                        f"{msg} (one of: {', '.join(sorted(STEPS))})"))
            continue
        kind = known[0]
        step_id = str(step.get("id") or f"{i + 1}-{kind}")
        if step_id in seen_ids:
            issues.append(PlanIssue(file, line_of(data, ["steps", i, "id"]), f"{where}/id",
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
        key_lines = {k: line_of(data, ["steps", i, kind, k]) or 0 for k in body}
        steps.append(StepSpec(i, step_id, kind, body, line_of(data, ["steps", i]), key_lines))

    probes: list[ProbeSpec] = []
    raw_probes = plain.get("validate")
    for i, probe in enumerate(raw_probes if isinstance(raw_probes, list) else []):
        if isinstance(probe, dict) and len(probe) == 1:
            kind, body = next(iter(probe.items()))
            if kind in PROBES:
                semantic(PROBES[kind], body, ["validate", i, kind])
            body = body if isinstance(body, dict) else {}
            key_lines = {k: line_of(data, ["validate", i, kind, k]) or 0 for k in body}
            probes.append(ProbeSpec(kind, body, f"validate/{i}", line_of(data, ["validate", i, kind]), key_lines))

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
