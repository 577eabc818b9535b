"""Blinker signals per part and per batch, to feed metrics (Prometheus, StatsD...).

Flask's own signals are blinker signals; these are too, but this module imports no Flask,
so the WSGI and ASGI middlewares can send them as well. Blinker comes with Flask; a
project installed without it (``pip install --no-deps flask-batch``) installs ``blinker``
to use this module. Nothing is sent, or measured, until this module has been imported.

Both signals are sent with ``None`` as the sender and these keyword arguments (the same
fields as the log records of :mod:`flask_batch.observe`):

- :data:`part_answered`: ``batch_id``, ``part`` (its place, from 1), ``part_id`` (its
  Content-ID or JSON id, or None), ``method``, ``path``, ``status``, ``duration`` (seconds;
  0 for a part that did not run).
- :data:`batch_answered`: ``batch_id``, ``parts``, ``failures`` (parts answered 400 or
  more), ``duration`` (seconds, from the batch request's arrival), ``batch_format``
  (``multipart`` or ``json``).

A receiver runs in the thread (or on the event loop) that writes the answer: keep it quick.
"""

from __future__ import annotations

try:
    from blinker import Namespace
except ImportError as error:  # blinker comes with Flask, not with --no-deps
    raise ImportError(
        "flask_batch.signals needs blinker (it comes with Flask): pip install blinker"
    ) from error

__all__ = ["batch_answered", "part_answered", "receiving"]

_signals = Namespace()

#: Sent as each part is written to the answer.
part_answered = _signals.signal("flask-batch.part-answered")
#: Sent once a batch's answer is complete.
batch_answered = _signals.signal("flask-batch.batch-answered")


def receiving() -> bool:
    """Whether any receiver is connected (otherwise the parts are not even timed)."""
    return bool(part_answered.receivers or batch_answered.receivers)
