"""Flask-Batch benchmarks: ``python -m bench`` (or ``make bench``); see ``bench/README.md``.

This package imports nothing at import time, so that ``bench.latency_proxy`` (standard library
only) and ``bench.workload`` (Flask only, any version) can be used without the ``bench`` extra,
the latter even by the alpha release's own virtual environment.
"""
