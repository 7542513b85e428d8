"""What every subcommand shares: the one-line usage error and KEY=VALUE flags."""
from __future__ import annotations

import json


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def parse_set(items: list[str] | None) -> dict:
    """`--set KEY=VALUE` flags -> {key: JSON value, or the string when it is not JSON}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
