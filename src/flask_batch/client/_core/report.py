"""What a caller is told when requests get no answer: :class:`BatchFailed`, with one line
that says why. An answer that is not a batch answer is told by what the endpoint said about
it, or by its status, content type and a hint (never an error page)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic

from ...wire.errors import MalformedBatch
from ...wire.media_type import parse_media_type
from .model import Failed, OuterT, Reply


class BatchFailed(Exception):
    """Batched requests got no answer: their batch could not be sent, or its answer was not
    a batch answer (a 413 that cannot be split, a 400, a lost connection after every retry).

    Each client raises its own kind: ``RequestsBatchFailed`` (a ``requests.HTTPError``) and
    ``HttpxBatchFailed`` (an ``httpx.TransportError``); ``except BatchFailed`` catches
    either. ``response`` is the batch's own response (None if there was none), ``requests``
    the requests left without an answer; the network error, if any, is the ``__cause__``. A
    batched request that its server answers with an error is never this: it gets an ordinary
    response with its own status.
    """

    response: Any
    requests: list[Any]


#: Why a request whose batch was answered has no answer of its own.
NO_PART = "the batch answer has no part for this request"


def stopped(at: str) -> str:
    """Why a request after the failure ``at`` (``METHOD target (status)``) has no answer: its
    batch stopped there, as OData batches do by default, so it never ran."""
    return (
        f"not run: the batch stopped at its first error, {at}, as an OData batch does; "
        "send Prefer: odata.continue-on-error to run every request"
    )


@dataclass(frozen=True, slots=True)
class Summary(Generic[OuterT]):
    """What a front end says of the requests a run left without an answer."""

    #: One line: why, and for how many.
    message: str
    #: The batch response that goes with it, and the error behind it (the first there is).
    outer: OuterT | None
    error: BaseException | None


def summary(failures: Sequence[Failed[OuterT]], total: int) -> Summary[OuterT]:
    """What to say of ``failures``, among ``total`` requests."""
    reasons = {failure.reason for failure in failures}
    first = failures[0].reason
    count = len(failures)
    if reasons == {NO_PART}:
        message = f"the batch answer has no part for {count} of {total} requests"
    elif len(reasons) == 1:
        message = first if count == total else f"{first} ({count} of {total})"
    else:
        message = f"{count} of {total} requests failed; the first: {first}"
    return Summary(
        message,
        next((failure.outer for failure in failures if failure.outer is not None), None),
        next((failure.error for failure in failures if failure.error is not None), None),
    )


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


#: The statuses of a batch's answer.
BATCH_ANSWER_STATUSES = frozenset({200, 202})


def media_type_of(content_type: str | None) -> str:
    """The media type of a ``Content-Type``, or what to say when there is none to read."""
    try:
        media_type, _ = parse_media_type(content_type or "")
    except MalformedBatch:
        return "an unreadable Content-Type"
    return media_type or "no Content-Type"


def not_a_batch_answer(reply: Reply[OuterT], answer_type: str) -> str | None:
    """Why ``reply`` is not a batch answer (of ``answer_type``), in one line, or None.

    A batch answer is ``200 OK``, or ``202 Accepted`` as OData 1.0 to 3.0 services (and
    Azure's) answer batches."""
    if reply.status not in BATCH_ANSWER_STATUSES:
        return outline(reply)
    media_type = media_type_of(reply.content_type)
    if media_type != answer_type:
        return (
            f"the batch URL answered {status_line(reply)} with {media_type}, not "
            f"{answer_type}: it is probably not a batch endpoint"
        )
    return None


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
