"""The options every client takes, checked once, when it is made."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypedDict

from ...wire.model import SubRequest
from .formats import Format, FormatName, format_named
from .limits import EndpointKnowledge, KnownLimits
from .model import OuterT
from .policy import Retry
from .queueing import Changeset, grouped
from .run import Run

#: Batches of one queue in flight at once, by default: as many connections as a browser opens
#: to one origin, so a queue split into a few batches takes about one round trip, not one each.
DEFAULT_CONCURRENCY = 6


class Queued(Protocol):
    """A request waiting for its batch, as a run needs it."""

    @property
    def sub_request(self) -> SubRequest: ...

    #: Positions in the queue of the requests it depends on.
    @property
    def depends_on(self) -> tuple[int, ...]: ...

    #: Seconds the whole exchange of its batch may take (None: no bound).
    @property
    def timeout(self) -> float | None: ...

    #: The changeset it is a member of (None: none).
    @property
    def group(self) -> Changeset | None: ...


class Options(TypedDict, total=False):
    """The options every client takes, as keywords (docs/clients/index.md); the defaults are
    those of :meth:`ClientOptions._configure`."""

    format: FormatName
    retries: int | Retry
    max_parts: int | None
    max_body_size: int | None
    discover: bool
    split: bool
    concurrency: int
    compress_bodies: bool | None


class ClientOptions(Generic[OuterT]):
    """Mixed into every front end: the options of the clients' table that every client
    shares (``format``, ``retries``, ``max_parts``, ``max_body_size``, ``discover``,
    ``split``, ``concurrency``, ``compress_bodies``), and the run they make of a queue."""

    #: How batched requests are retried.
    retry: Retry
    #: What this client knows of the endpoint's limits (configured, discovered, learned from
    #: a 413); shared by all its batches, and but for the configured ones, with the other
    #: clients of its batch URL.
    limits: KnownLimits
    #: Whether a queue that exceeds the limits is split (else: one batch, whatever its size).
    split: bool
    #: Batches of one queue in flight at once.
    concurrency: int
    _format: type[Format]

    def _configure(
        self,
        *,
        format: FormatName = "multipart",
        retries: int | Retry = 2,
        max_parts: int | None = None,
        max_body_size: int | None = None,
        discover: bool = True,
        split: bool = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        compress_bodies: bool | None = None,
        shared: Callable[[], EndpointKnowledge] | None = None,
    ) -> None:
        """Check and keep the options; ``ValueError`` (or ``TypeError``) for a bad one.
        ``shared`` gives what the clients of the batch URL know of it (not an option: the
        front end's)."""
        self.format = format
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
        self.retry = Retry.of(retries)
        self.limits = KnownLimits(
            max_parts=max_parts,
            max_body_size=max_body_size,
            discover=discover,
            compress_bodies=compress_bodies,
            shared=shared,
        )
        self.split = split
        self.concurrency = concurrency

    @property
    def format(self) -> FormatName:
        """The batch format: ``"multipart"`` or ``"json"``."""
        return self._format.name

    @format.setter
    def format(self, name: FormatName) -> None:
        self._format = format_named(name)

    def _run(self, queue: Sequence[Queued]) -> Run[OuterT]:
        """The run that sends ``queue`` under these options."""
        requests = [item.sub_request for item in queue]
        self.limits.renew()
        return Run(
            grouped(requests, [item.group for item in queue], self._format.group_name),
            [item.depends_on for item in queue],
            format=self._format,
            retry=self.retry,
            limits=self.limits,
            split=self.split,
            timeouts=[item.timeout for item in queue],
            concurrency=self.concurrency,
        )
