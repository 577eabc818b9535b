"""What the sync and async httpx transports share (:class:`TransportBase`): which requests
go in a batch, and how a request becomes an entry."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Unpack

import httpx

from ._core.options import ClientOptions, Options
from ._core.queueing import Changeset
from ._drivers import KNOWN_ENDPOINTS
from ._httpx_messages import Entry, entry, origin_of, refers


class TransportBase(ClientOptions[httpx.Response]):
    """What the sync and async transports share: which requests batch, and how."""

    def __init__(self, batch_url: str | httpx.URL, **options: Unpack[Options]) -> None:
        """Check and keep the options; what is known of the endpoint is shared with the
        other clients of ``batch_url``."""
        self._configure(shared=functools.partial(KNOWN_ENDPOINTS.of, str(batch_url)), **options)
        self.batch_url = httpx.URL(batch_url)
        self._origin = origin_of(self.batch_url)
        self._batch_path = self.batch_url.raw_path.split(b"?", 1)[0]

    def batchable(self, request: httpx.Request) -> bool:
        """Whether ``request`` goes in a batch: same origin as the batch URL, and not the
        batch URL itself; or a reference to an earlier request of the batch (``$1/items``)."""
        return (
            origin_of(request.url) == self._origin
            and request.url.raw_path.split(b"?", 1)[0] != self._batch_path
        ) or refers(request)

    def _entry(
        self,
        request: httpx.Request,
        body: bytes,
        depends_on: tuple[int, ...] = (),
        *,
        target: str | None = None,
        group: Changeset | None = None,
    ) -> Entry:
        return entry(request, body, self._format, depends_on, target=target, group=group)

    def _batched(
        self, requests: Sequence[httpx.Request], atomic: bool
    ) -> tuple[list[int], Changeset | None]:
        """Where the requests of :meth:`send_all` that go in a batch are, and with
        ``atomic``, the group they make (every one of them must be batched)."""
        batched = [index for index, request in enumerate(requests) if self.batchable(request)]
        if not atomic or not requests:
            return batched, None
        if len(batched) < len(requests):
            passing = requests[min(set(range(len(requests))) - set(batched))]
            raise ValueError(
                f"{passing.url} cannot be in an atomic group: it is not batched (only requests "
                "to the batch endpoint's origin, and references, are)"
            )
        return batched, Changeset(closed=True)
