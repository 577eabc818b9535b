"""Small helpers shared by the benchmarks: medians, ranges, and a clean clock."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

T = TypeVar("T")


def start_response(
    status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
) -> Callable[[bytes], object]:
    """A WSGI ``start_response`` that keeps nothing (the benchmarks read the body only)."""
    return _discard


def _discard(data: bytes) -> None:
    return None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(run: Callable[[], T], clock: Callable[[], float] = time.perf_counter) -> tuple[float, T]:
    """Seconds ``run`` took (by ``clock``: wall time unless told), and what it returned; the
    garbage is collected first.

    The collector stays enabled while ``run`` runs, as it is in a server: what a batch
    allocates, and the collections that triggers, are part of its cost.
    """
    gc.collect()
    start = clock()
    result = run()
    return clock() - start, result
