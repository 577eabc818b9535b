"""The options of a batch endpoint: each declared once, read by every adapter.

An option is a field of :class:`~flask_batch.wire.model.Limits`, of
:class:`~flask_batch.execution.Execution`, of :class:`~flask_batch.conventions.Conventions`
or of :class:`~flask_batch.intake.Routing`, with its default and what it does
(:func:`~flask_batch.wire.model.option`). :data:`OPTIONS` lists them from those fields, with
their config keys; :func:`resolve_options` turns keyword arguments and ``BATCH_*`` config keys
into :class:`Settings`; the middlewares take them as keyword arguments typed by
:class:`BatchOptions` (a test checks it names every option with its type).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Generic, TypedDict, TypeVar, Unpack

from .conventions import Conventions
from .execution import Execution
from .groups import check_hook
from .intake import Routing
from .part_headers import DEFAULT_HEADER_RULES, HeaderRules
from .transactions import AsyncTransactionHook, TransactionHook
from .wire.model import Limits

__all__ = [
    "OPTIONS",
    "BatchOptions",
    "MiddlewareOptions",
    "Option",
    "Settings",
    "resolve_options",
]


@dataclass(frozen=True)
class Option:
    """One option: its name, default and doc, the settings it belongs to, its config key."""

    name: str
    default: Any
    doc: str
    group: type[Limits | Execution | Conventions | Routing]

    @property
    def config_key(self) -> str:
        return f"BATCH_{self.name.upper()}"


_GROUPS: tuple[type[Limits | Execution | Conventions | Routing], ...] = (
    Limits,
    Execution,
    Conventions,
    Routing,
)
#: Every option, in the order docs/configuration.md's table lists them.
OPTIONS: tuple[Option, ...] = tuple(
    Option(declared.name, declared.default, declared.metadata["doc"], group)
    for group in _GROUPS
    for declared in fields(group)
)


class BatchOptions(TypedDict, total=False):
    """The options as keyword arguments, typed (defaults and docs: :data:`OPTIONS`)."""

    max_parts: int
    max_group_size: int
    max_body_size: int
    max_part_size: int
    max_header_size: int
    max_headers: int
    deadline: float | None
    max_answer_part_size: int
    max_answer_size: int
    max_workers: int
    max_workers_per_request: int | None
    transaction: TransactionHook | AsyncTransactionHook | None
    non_atomic_groups: bool
    pinned_headers: Iterable[str]
    json_dialect: str
    multipart_dialect: str
    answer_status: int | str
    flat_changesets: bool
    compress_answers: bool
    shared_path: bool
    batch_query: str | None


@dataclass(frozen=True)
class Settings:
    """Everything a route was configured with, checked."""

    limits: Limits = field(default_factory=Limits)
    execution: Execution = field(default_factory=Execution)
    conventions: Conventions = field(default_factory=Conventions)
    routing: Routing = field(default_factory=Routing)
    #: Which of a part's own headers reach the application (``pinned_headers`` included).
    header_rules: HeaderRules = field(init=False)

    def __post_init__(self) -> None:
        pinned = self.conventions.pinned_headers
        rules = HeaderRules(pinned) if pinned else DEFAULT_HEADER_RULES
        object.__setattr__(self, "header_rules", rules)


def resolve_options(config: Mapping[str, Any], options: Mapping[str, Any]) -> Settings:
    """The settings of a route: keyword ``options`` win over ``BATCH_*`` keys of ``config``,
    which win over the defaults. Unknown names raise TypeError, bad values ValueError."""
    names = [known.name for known in OPTIONS]
    unknown = set(options) - set(names)
    if unknown:
        raise TypeError(f"unknown Flask-Batch option(s) {sorted(unknown)}; the options are {names}")
    values: dict[type, dict[str, Any]] = {group: {} for group in _GROUPS}
    for known in OPTIONS:
        if known.name in options:
            values[known.group][known.name] = options[known.name]
        elif known.config_key in config:
            values[known.group][known.name] = config[known.config_key]
    return Settings(
        Limits(**values[Limits]),
        Execution(**values[Execution]),
        Conventions(**values[Conventions]),
        Routing(**values[Routing]),
    )


_AppT = TypeVar("_AppT")


class MiddlewareOptions(Generic[_AppT]):
    """What every batch middleware takes: the app it wraps, the batch path, and the options
    as keyword arguments (typed by :class:`BatchOptions`, so type checkers and Starlette's
    ``add_middleware`` see them). An invalid value raises ValueError."""

    #: Whether the middleware serves an event loop (ASGI): its transaction hook must then
    #: be a coroutine function, else a plain one (TypeError at construction).
    asynchronous: ClassVar[bool] = False

    def __init__(self, app: _AppT, path: str = "/batch", **options: Unpack[BatchOptions]) -> None:
        self.app = app
        self.path = path
        self.settings = resolve_options({}, options)
        self.limits = self.settings.limits
        self.execution = self.settings.execution
        check_hook(self.execution.transaction, asynchronous=self.asynchronous)
