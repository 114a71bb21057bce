"""`{{ host.data.KEY }}` in plan values, replaced by the host's inventory data (the only template form)."""
from __future__ import annotations

import re
from typing import Any

from orchestrator.errors import InputError

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
TEMPLATE_EXPR = re.compile(r"^host\.data\.([A-Za-z_][A-Za-z0-9_]*)$")


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
