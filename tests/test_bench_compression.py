"""The slow-start model of the gzip benchmark (bench/compression.py): the flights a body
needs from an initial window of 10 segments of 1,448 bytes, doubling each round trip."""

from __future__ import annotations

import pytest

from bench.compression import flights


@pytest.mark.parametrize(
    ("size", "expected"),
    [(0, 1), (14_480, 1), (14_481, 2), (43_440, 2), (43_441, 3), (181_707, 4)],
)
def test_flights_under_slow_start(size: int, expected: int) -> None:
    assert flights(size) == expected
