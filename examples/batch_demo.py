"""The batch every framework example sends with ``--demo``: standard library only.

Four calls of the examples' todo API in one JSON batch (the OData/Microsoft Graph format, easy
to write by hand): create a todo, list the todos once it exists (``dependsOn``), read one that
does not exist, and delete with the wrong credentials. Each keeps its own status.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

TOKEN = "Bearer demo-token"
CALLS: list[dict[str, Any]] = [
    {
        "id": "create",
        "method": "POST",
        "url": "/todos",
        "headers": {"Content-Type": "application/json"},
        "body": {"title": "buy milk"},
    },
    {"id": "list", "method": "GET", "url": "/todos", "dependsOn": ["create"]},
    {"id": "missing", "method": "GET", "url": "/todos/99"},
    {
        "id": "forbidden",
        "method": "DELETE",
        "url": "/todos/1",
        "headers": {"Authorization": "Bearer wrong"},
    },
]


def send(base: str) -> list[dict[str, Any]]:
    """Send the demo batch to ``base``/batch; return the answers, in request order."""
    request = urllib.request.Request(
        f"{base}/batch",
        data=json.dumps({"requests": CALLS}).encode(),
        headers={"Content-Type": "application/json", "Authorization": TOKEN},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        responses: list[dict[str, Any]] = json.load(answer)["responses"]
    return responses


def show(base: str) -> None:
    """Send the demo batch and print one line per answer."""
    print(f"POST {base}/batch with {len(CALLS)} requests, one round trip:")
    for call, response in zip(CALLS, send(base), strict=True):
        body = json.dumps(response.get("body"), ensure_ascii=False)
        print(f"  {call['method']:6} {call['url']:10} -> {response['status']} {body}")


def curl(base: str) -> str:
    """A command that sends the same batch."""
    data = json.dumps({"requests": CALLS}, separators=(",", ":"))
    return (
        f"curl -s {base}/batch -H 'Content-Type: application/json' "
        f"-H 'Authorization: {TOKEN}' -d '{data}'"
    )
