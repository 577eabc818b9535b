"""The options of a batch endpoint, shared by every framework adapter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .execution import Execution
from .intake import JSON_DIALECT_OPTIONS
from .part_headers import DEFAULT_HEADER_RULES, HeaderRules
from .wire.model import Limits

#: Options that are neither a limit nor an execution setting.
_OTHER_OPTIONS = ("pinned_headers", "json_dialect")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an endpoint was configured with, checked."""

    limits: Limits
    execution: Execution
    #: Which of a part's own headers reach the application (``pinned_headers`` included).
    header_rules: HeaderRules = DEFAULT_HEADER_RULES
    #: How JSON answers spell header names: "graph", "odata", or "auto" (by the request).
    json_dialect: str = "auto"


def option_names() -> tuple[str, ...]:
    return (*Limits.option_names(), *Execution.option_names(), *_OTHER_OPTIONS)


def resolve_options(config: Mapping[str, Any], options: dict[str, Any]) -> Settings:
    """The settings of an endpoint: keyword ``options`` win over ``BATCH_*`` keys of
    ``config``, which win over the defaults. Unknown names raise TypeError, bad values
    ValueError."""
    names = option_names()
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
    pinned = values.get("pinned_headers", ())
    dialect = values.get("json_dialect", "auto")
    if dialect not in JSON_DIALECT_OPTIONS:
        raise ValueError(
            f"json_dialect must be one of {list(JSON_DIALECT_OPTIONS)}, not {dialect!r}"
        )
    rules = HeaderRules(pinned) if pinned else DEFAULT_HEADER_RULES
    return Settings(limits, execution, rules, dialect)


DEFAULT_LIMITS = Limits()
DEFAULT_EXECUTION = Execution()
AppT = TypeVar("AppT")


class MiddlewareOptions(Generic[AppT]):
    """What every batch middleware takes: the app it wraps, the batch path, and the options
    one by one as keyword arguments (so type checkers and Starlette's ``add_middleware`` see
    them). An invalid value raises ValueError."""

    def __init__(
        self,
        app: AppT,
        path: str = "/batch",
        *,
        max_parts: int = DEFAULT_LIMITS.max_parts,
        max_body_size: int = DEFAULT_LIMITS.max_body_size,
        max_part_size: int = DEFAULT_LIMITS.max_part_size,
        max_header_size: int = DEFAULT_LIMITS.max_header_size,
        max_headers: int = DEFAULT_LIMITS.max_headers,
        deadline: float | None = DEFAULT_LIMITS.deadline,
        max_answer_part_size: int = DEFAULT_LIMITS.max_answer_part_size,
        max_answer_size: int = DEFAULT_LIMITS.max_answer_size,
        max_workers: int = DEFAULT_EXECUTION.max_workers,
        max_workers_per_request: int | None = DEFAULT_EXECUTION.max_workers_per_request,
        pinned_headers: Iterable[str] = (),
        json_dialect: str = "auto",
    ) -> None:
        self.app = app
        self.path = path
        self.settings = resolve_options(
            {},
            {
                "max_parts": max_parts,
                "max_body_size": max_body_size,
                "max_part_size": max_part_size,
                "max_header_size": max_header_size,
                "max_headers": max_headers,
                "deadline": deadline,
                "max_answer_part_size": max_answer_part_size,
                "max_answer_size": max_answer_size,
                "max_workers": max_workers,
                "max_workers_per_request": max_workers_per_request,
                "pinned_headers": pinned_headers,
                "json_dialect": json_dialect,
            },
        )
        self.limits = self.settings.limits
        self.execution = self.settings.execution
