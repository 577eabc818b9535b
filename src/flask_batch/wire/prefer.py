"""The ``Prefer`` request header (RFC 7240) and the batch preferences it carries."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Preferences", "parse_preferences"]

_PREFERENCE = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;\s]*))?[^,]*'
)
_CONTINUE_ON_ERROR = ("continue-on-error", "odata.continue-on-error")


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a batch client asked for, and the ``Preference-Applied`` value that says so."""

    continue_on_error: bool = True
    applied: str | None = None


def parse_preferences(prefer: str | None) -> Preferences:
    """Read the error policy from ``Prefer``; anything unknown is ignored, as RFC 7240 says."""
    if not prefer:
        return Preferences()
    for item in prefer.split(","):
        match = _PREFERENCE.match(item)
        if match is None or match.group(1).lower() not in _CONTINUE_ON_ERROR:
            continue
        name = match.group(1).lower()
        value = (match.group(2) or "true").strip('"').lower()
        if value in ("true", "false"):
            return Preferences(value == "true", f"{name}={value}")
    return Preferences()
