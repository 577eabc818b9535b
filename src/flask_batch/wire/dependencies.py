"""Dependencies between the requests of a batch, checked before anything runs.

A request may depend only on requests before it, so the graph is acyclic by construction and
the request order is always a valid execution order.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import MalformedBatch
from .model import SubRequest

__all__ = ["dependency_indices", "request_key"]


def request_key(request_id: str) -> str:
    """An id as dependencies name it: ``<a>`` and ``a`` are the same request."""
    request_id = request_id.strip()
    if request_id.startswith("<") and request_id.endswith(">"):
        return request_id[1:-1]
    return request_id


def dependency_indices(requests: Sequence[SubRequest]) -> list[tuple[int, ...]]:
    """For each request, the indices of the requests it depends on.

    Refuses (400, naming the request) a dependency on an unknown id, on itself or on a later
    request, and ambiguous ids when any request has dependencies.
    """
    if not any(request.depends_on for request in requests):
        return [()] * len(requests)
    positions: dict[str, int] = {}
    for index, request in enumerate(requests):
        if request.content_id is None:
            continue
        key = request_key(request.content_id)
        if key in positions:
            raise MalformedBatch(
                f"the id {request.content_id!r} is used twice: dependencies would be ambiguous",
                part=index + 1,
            )
        positions[key] = index
    plan = []
    for index, request in enumerate(requests):
        indices = []
        for name in request.depends_on:
            position = positions.get(request_key(name))
            if position is None:
                raise MalformedBatch(f"depends on an unknown request {name!r}", part=index + 1)
            if position == index:
                raise MalformedBatch(
                    f"depends on itself ({name!r}): a dependency cycle", part=index + 1
                )
            if position > index:
                raise MalformedBatch(
                    f"depends on {name!r}, which comes later: a request may only depend on "
                    "earlier ones (this also rules out cycles)",
                    part=index + 1,
                )
            indices.append(position)
        plan.append(tuple(indices))
    return plan
