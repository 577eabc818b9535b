"""The options of a batch endpoint, shared by every framework adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .engine import Execution
from .wire.model import Limits


def resolve_options(config: Mapping[str, Any], options: dict[str, Any]) -> tuple[Limits, Execution]:
    """Limits and execution settings: keyword ``options`` win over ``BATCH_*`` keys of
    ``config``, which win over the defaults. Unknown names raise TypeError, bad values
    ValueError."""
    names = (*Limits.option_names(), *Execution.option_names())
    unknown = set(options) - set(names)
    if unknown:
        raise TypeError(
            f"unknown Flask-Batch option(s) {sorted(unknown)}; the options are {list(names)}"
        )
    values = {}
    for name in names:
        if name in options:
            values[name] = options[name]
        elif f"BATCH_{name.upper()}" in config:
            values[name] = config[f"BATCH_{name.upper()}"]
    limits = Limits(**{k: v for k, v in values.items() if k in Limits.option_names()})
    execution = Execution(**{k: v for k, v in values.items() if k in Execution.option_names()})
    return limits, execution
