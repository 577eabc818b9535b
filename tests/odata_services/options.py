"""The route options of issue 13 that these services need, each a
:data:`~tests.odata_services.store.RouteOptions`.
"""

from __future__ import annotations

from typing import Any

from .store import RouteOptions, Store


def accepted(store: Store) -> dict[str, Any]:
    """Answer every batch ``202 Accepted``: pyodata requires it and sends neither
    ``DataServiceVersion`` nor ``MaxDataServiceVersion`` to say so (azure-storage-blob's
    ``x-ms-version`` says it)."""
    return {"answer_status": 202}


def flat_changesets(store: Store) -> dict[str, Any]:
    """Answer a changeset that succeeded with its members' answers as top-level parts (what
    SharePoint does, and what office365-rest-python-client reads)."""
    return {"flat_changesets": True}


def atomic(store: Store) -> dict[str, Any]:
    """Run changesets as transactions of ``store`` (its :meth:`Store.begin` is the hook)."""
    return {"transaction": store.begin}


def combined(*options: RouteOptions) -> RouteOptions:
    """All of ``options`` on one route."""

    def route_options(store: Store) -> dict[str, Any]:
        return {name: value for each in options for name, value in each(store).items()}

    return route_options
