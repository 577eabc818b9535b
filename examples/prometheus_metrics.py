"""Prometheus metrics of a batch endpoint's parts, from Flask-Batch's blinker signals.

    from prometheus_metrics import count_parts
    count_parts()   # once, at start-up: the metrics go to prometheus_client's default registry

A Counter of parts by method and status, a Histogram of their durations, and a Counter of
batches with at least one failed part. The same receivers serve the Flask extension and the
WSGI and ASGI middlewares (tests/test_metrics.py runs this file against a real server).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from flask_batch.signals import batch_answered, part_answered


def count_parts(registry: CollectorRegistry = REGISTRY) -> None:
    """Record every part and batch answered from now on in ``registry``."""
    parts = Counter(
        "batch_parts", "Parts of batches answered", ["method", "status"], registry=registry
    )
    durations = Histogram(
        "batch_part_duration_seconds", "Time each part of a batch ran", registry=registry
    )
    failed_batches = Counter(
        "batch_failed", "Batches with at least one part answered 400 or more", registry=registry
    )

    def on_part(sender: object, *, method: str, status: int, duration: float, **_: Any) -> None:
        parts.labels(method, str(status)).inc()
        durations.observe(duration)

    def on_batch(sender: object, *, failures: int, **_: Any) -> None:
        if failures:
            failed_batches.inc()

    # weak=False: the receivers are local functions, kept alive by the signals themselves.
    part_answered.connect(on_part, weak=False)
    batch_answered.connect(on_batch, weak=False)
