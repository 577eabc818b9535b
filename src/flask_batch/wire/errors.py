"""One error tree for everything a client can get wrong, each error carrying its HTTP status.

Adapters turn a :class:`BatchError` into an ``application/problem+json`` answer (RFC 9457)
with :meth:`BatchError.problem`, so every refusal says what is wrong, and where.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, ClassVar

from .model import Limits, SubResponse

__all__ = [
    "ALLOW",
    "PROBLEM_JSON",
    "AtomicityUnavailable",
    "BatchError",
    "LengthRequired",
    "LimitExceeded",
    "MalformedBatch",
    "MethodNotAllowed",
    "RequestTimeout",
    "UnsupportedMediaType",
    "problem_body",
    "problem_response",
    "reason_phrase",
]

PROBLEM_JSON = "application/problem+json"
#: The methods of a batch endpoint: POST sends a batch, the others describe the endpoint.
ALLOW = "GET, HEAD, OPTIONS, POST"


class BatchError(Exception):
    """A batch refused as a whole; ``status`` is the HTTP status of the answer."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Malformed batch"
    slug: ClassVar[str] = "malformed-batch"

    #: Headers the answer must carry besides Content-Type (for example ``Allow``).
    headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, detail: str, *, part: int | None = None, member: int | None = None) -> None:
        super().__init__(_located(detail, part, member))
        self.detail = detail
        #: 1-based index of the offending part (of the body), when the error is about one part.
        self.part = part
        #: 1-based index of the offending member inside the changeset that is :attr:`part`.
        self.member = member

    def inside(self, part: int) -> BatchError:
        """This error, found by reading the changeset at ``part`` on its own: the part it
        names is a member of that changeset (None: the changeset itself)."""
        return self.at(part, self.part)

    def at(self, part: int, member: int | None = None) -> BatchError:
        """This error, about part ``part`` of the body (and ``member`` of that changeset)."""
        self.part, self.member = part, member
        self.args = (_located(self.detail, part, member),)
        return self

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        document: dict[str, Any] = {
            "type": f"tag:flask-batch,2026:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": str(self),
        }
        if self.part is not None:
            document["part"] = self.part
        if self.member is not None:
            document["member"] = self.member
        return document


def _located(detail: str, part: int | None, member: int | None) -> str:
    if part is None:
        return detail
    if member is None:
        return f"part {part}: {detail}"
    return f"part {part}, member {member}: {detail}"


class MalformedBatch(BatchError):
    """The body is not a well-formed batch (multipart or JSON) of HTTP requests."""


class LimitExceeded(BatchError):
    """The batch exceeds one of the configured :class:`~flask_batch.wire.model.Limits`."""

    status = 413
    title = "Batch too large"
    slug = "limit-exceeded"

    def __init__(
        self,
        limit: str,
        value: int,
        detail: str,
        *,
        part: int | None = None,
        member: int | None = None,
    ) -> None:
        super().__init__(detail, part=part, member=member)
        self.limit = limit
        self.value = value

    @classmethod
    def of(
        cls,
        limits: Limits,
        limit: str,
        detail: str,
        *,
        part: int | None = None,
        member: int | None = None,
    ) -> LimitExceeded:
        """The error for ``limits.<limit>``; ``{value}`` in ``detail`` becomes its value."""
        value = getattr(limits, limit)
        return cls(limit, value, detail.format(value=value), part=part, member=member)

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "limit": self.limit, "value": self.value}


class AtomicityUnavailable(BatchError):
    """The batch holds an atomic group the route cannot run as one: refused rather than run
    without atomicity, which would leave a failed group's first writes applied."""

    status = 422
    title = "Atomic groups not supported"
    slug = "atomic-groups-not-supported"


class UnsupportedMediaType(BatchError):
    """The batch request is neither ``multipart/mixed`` nor ``application/json``, or its
    ``Content-Encoding`` is not one the endpoint decodes (gzip, deflate)."""

    status = 415
    title = "Unsupported batch media type"
    slug = "unsupported-media-type"


class MethodNotAllowed(BatchError):
    """A batch endpoint only accepts POST."""

    status = 405
    title = "Method not allowed"
    slug = "method-not-allowed"
    headers = (("Allow", ALLOW),)


class LengthRequired(BatchError):
    """The body has neither a Content-Length nor a framing that ends it."""

    status = 411
    title = "Length required"
    slug = "length-required"


class RequestTimeout(BatchError):
    """The batch's deadline passed while its body was still arriving."""

    status = 408
    title = "Request timeout"
    slug = "request-timeout"


def problem_body(problem: dict[str, Any]) -> bytes:
    """A problem document serialised as the body of an answer."""
    return json.dumps(problem, ensure_ascii=False).encode("utf-8")


def problem_response(
    status: int, title: str, detail: str, headers: tuple[tuple[str, str], ...] = ()
) -> SubResponse:
    """A sub-response refusing one part (the rest of the batch goes on)."""
    problem = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return SubResponse(
        status,
        reason_phrase(status),
        (("Content-Type", PROBLEM_JSON), *headers),
        problem_body(problem),
    )


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status``, so every status line carries one."""
    return _PHRASES.get(status, "Unknown")


#: The standard reason phrases by status: a look-up, where ``HTTPStatus(status)`` costs an
#: enum construction each time (half a microsecond, for every part an ASGI application answers).
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
