"""The documented metrics example (docs/observability.md, examples/prometheus_metrics.py)
counts what a real server answered: parts by method and status, their durations, and the
batches that failed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_batch import add_batch_route, signals
from flask_batch.client import Batching

from .servers import live_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from prometheus_metrics import count_parts  # (an example, not a package)


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    before = (list(signals.part_answered.receivers), list(signals.batch_answered.receivers))
    count_parts(registry)
    try:
        yield registry
    finally:
        for signal, kept in zip(
            (signals.part_answered, signals.batch_answered), before, strict=True
        ):
            for receiver_id in list(signal.receivers):
                if receiver_id not in kept:
                    signal.receivers.pop(receiver_id)


def test_the_prometheus_example_counts_parts_and_failed_batches(
    registry: CollectorRegistry,
) -> None:
    app = Flask(__name__)
    app.add_url_rule("/ok", "ok", lambda: "ok")
    add_batch_route(app)
    with live_server(app) as base:
        with Batching(f"{base}/batch") as session:
            ok = session.get(f"{base}/ok")
            missing = session.delete(f"{base}/missing")
        assert (ok.status_code, missing.status_code) == (200, 404)
        with Batching(f"{base}/batch") as session:
            session.get(f"{base}/ok")
        for _ in range(500):  # the batch's signal follows the answer's last bytes
            if registry.get_sample_value("batch_failed_total") is not None:
                break
            time.sleep(0.01)
    value = registry.get_sample_value
    assert value("batch_parts_total", {"method": "GET", "status": "200"}) == 2
    assert value("batch_parts_total", {"method": "DELETE", "status": "404"}) == 1
    assert value("batch_part_duration_seconds_count") == 3
    assert (value("batch_part_duration_seconds_sum") or 0) > 0
    assert value("batch_failed_total") == 1
