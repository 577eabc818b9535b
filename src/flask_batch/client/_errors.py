"""Errors every client shares."""

from __future__ import annotations


class BatchNotSent(RuntimeError):
    """A batched response was read before its batch was answered."""
