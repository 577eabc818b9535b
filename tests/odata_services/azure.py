"""What Azure Tables and Azure Blob share: the local account, and the headers of every answer."""

from __future__ import annotations

import uuid
from email.utils import formatdate

from flask import request

#: The account of the local endpoint, path-style as Azurite's (``http://127.0.0.1:PORT/<account>``).
ACCOUNT = "devstoreaccount1"
#: A made-up account key (base64): the services do not check signatures.
ACCOUNT_KEY = "ZmFrZS1rZXktZm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1rZXk="


def storage_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` after those every Azure Storage answer carries (a request id, the version
    the request asked for, the date)."""
    return {
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-version": request.headers.get("x-ms-version", "2019-02-02"),
        "Date": formatdate(usegmt=True),
        **headers,
    }
