"""What went wrong with a batch, in one line: an answer that is not a batch answer says what
the endpoint said about it, or its status, content type and a hint (never an error page)."""

from __future__ import annotations

import json

from ...wire.errors import MalformedBatch
from ...wire.multipart import parse_media_type
from .model import OuterT, Reply

#: What a status that no batch endpoint answers to a POST most likely means.
_HINTS = {
    404: "it is probably not a batch endpoint (is the URL right?)",
    405: "it does not take POST, so it is probably not a batch endpoint (is the URL right?)",
}
_NOT_A_BATCH = "not an answer from a batch endpoint (the whole response is in .response)"
#: The longest text of an answer a message quotes.
_QUOTED = 200


def status_line(reply: Reply[OuterT]) -> str:
    """The answer's status and reason phrase: ``404 Not Found``."""
    return f"{reply.status} {reply.reason}".rstrip()


def media_type_of(content_type: str | None) -> str:
    """The media type of a ``Content-Type``, or what to say when there is none to read."""
    try:
        media_type, _ = parse_media_type(content_type or "")
    except MalformedBatch:
        return "an unreadable Content-Type"
    return media_type or "no Content-Type"


def outline(reply: Reply[OuterT]) -> str:
    """A batch answered with an error, in one line: what the endpoint said about it, or the
    status, the content type and a hint (an HTML error page is never quoted)."""
    quoted = said(reply)
    if quoted is not None and reply.status not in _HINTS:
        return f"the batch failed with {status_line(reply)}: {quoted}"
    hint = _HINTS.get(reply.status, _NOT_A_BATCH)
    media_type = media_type_of(reply.content_type)
    return f"the batch URL answered {status_line(reply)} ({media_type}): {hint}"


def said(reply: Reply[OuterT]) -> str | None:
    """What an error answer says, on one line and cut short: a problem document's detail
    (or title), or a plain text; None for anything else (an HTML page, say)."""
    media_type = media_type_of(reply.content_type)
    if media_type == "application/problem+json":
        try:
            problem = json.loads(reply.body)
        except ValueError:
            return None
        detail = (
            problem.get("detail") or problem.get("title") if isinstance(problem, dict) else None
        )
        text = detail if isinstance(detail, str) else ""
    elif media_type in ("text/plain", "no Content-Type"):
        text = reply.body[: 4 * _QUOTED].decode("utf-8", "replace")
    else:
        return None
    text = " ".join(text.split())
    if len(text) > _QUOTED:
        text = text[: _QUOTED - 1] + "…"
    return text or None
