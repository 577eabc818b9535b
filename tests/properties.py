"""The settings of every property test: reproducible (derandomized, no example database)
and without a per-example deadline, which a shared machine would trip at random."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROPERTY = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
