"""The JSON batch format of OData 4.01 and Microsoft Graph.

Request: ``{"requests": [{"id", "method", "url", "headers", "body", "dependsOn"}]}``.
Answer: ``{"responses": [{"id", "status", "headers", "body"}]}``, in request order. A body
travels as the JSON value itself under a JSON media type, as a string under ``text/*``, and
base64url-encoded otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from .errors import LimitExceeded, MalformedBatch, reason_phrase
from .fields import encode_fields
from .http1 import response_fields
from .model import Headers, Limits, SubRequest, SubResponse
from .multipart import parse_media_type

MEDIA_TYPE = "application/json"
# Every visible ASCII character stays as sent; anything else in a url is percent-encoded.
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))


def is_json(media_type: str) -> bool:
    return media_type == MEDIA_TYPE or media_type.endswith("+json")


class JsonRequestReader:
    """Collects a JSON batch body (bounded by ``max_body_size``) and reads its requests."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limits.max_body_size:
            raise LimitExceeded.of(
                self._limits, "max_body_size", "the batch body is larger than {value} bytes"
            )
        self._chunks.append(data)

    def close(self) -> list[SubRequest]:
        try:
            document = _loads(b"".join(self._chunks))
        except (ValueError, RecursionError) as error:
            raise MalformedBatch(f"the body is not valid JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("requests"), list):
            raise MalformedBatch('a JSON batch is an object with a "requests" array')
        items = document["requests"]
        if len(items) > self._limits.max_parts:
            raise LimitExceeded.of(
                self._limits,
                "max_parts",
                "the batch has more than {value} requests",
                part=self._limits.max_parts + 1,
            )
        requests = [self._request(item, index) for index, item in enumerate(items, start=1)]
        seen: set[str] = set()
        for index, request in enumerate(requests, start=1):
            assert request.content_id is not None
            if request.content_id in seen:
                raise MalformedBatch(f"the id {request.content_id!r} is used twice", part=index)
            seen.add(request.content_id)
        return requests

    def _request(self, item: Any, index: int) -> SubRequest:
        if not isinstance(item, dict):
            raise MalformedBatch("a request must be a JSON object", part=index)
        request_id = _string(item, "id", index)
        method = _string(item, "method", index).upper()
        if not method.isascii() or not method.isalpha():
            raise MalformedBatch(f"invalid method {method!r}", part=index)
        try:
            target = quote(_string(item, "url", index), safe=_URL_SAFE)
        except UnicodeEncodeError:  # a lone surrogate escape has no UTF-8 form
            raise MalformedBatch('"url" is not valid Unicode', part=index) from None
        headers = self._headers(item.get("headers", {}), index)
        depends_on = self._depends_on(item, index)
        refusal = None
        body = b""
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        # "body": null is the JSON value null under a JSON type, and no body otherwise.
        if "body" in item and (item["body"] is not None or is_json(_media(content_type)[0])):
            if content_type is None:
                refusal = "a request with a body needs a Content-Type header"
            else:
                try:
                    body = encode_body(item["body"], content_type)
                except ValueError as error:
                    refusal = str(error)
        if len(body) > self._limits.max_part_size:
            raise LimitExceeded.of(
                self._limits,
                "max_part_size",
                "the request's body is larger than {value} bytes",
                part=index,
            )
        return SubRequest(method, target, headers, body, request_id, depends_on, refusal)

    def _headers(self, headers: Any, index: int) -> Headers:
        if not isinstance(headers, dict) or not all(
            isinstance(value, str) for value in headers.values()
        ):
            raise MalformedBatch('"headers" must be an object of strings', part=index)
        fields = tuple(headers.items())
        if len(fields) > self._limits.max_headers:
            raise LimitExceeded.of(
                self._limits, "max_headers", "the request has more than {value} headers", part=index
            )
        try:
            size = len(encode_fields(fields))
        except ValueError as error:
            raise MalformedBatch(str(error), part=index) from None
        if size > self._limits.max_header_size:
            raise LimitExceeded.of(
                self._limits,
                "max_header_size",
                "the request's headers are longer than {value} bytes",
                part=index,
            )
        return fields

    def _depends_on(self, item: dict[str, Any], index: int) -> tuple[str, ...]:
        if "dependsOn" in item and "depends_on" in item:
            raise MalformedBatch('give either "dependsOn" or "depends_on", not both', part=index)
        names = item.get("dependsOn", item.get("depends_on", []))
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise MalformedBatch('"dependsOn" must be an array of request ids', part=index)
        return tuple(names)


def _string(item: dict[str, Any], key: str, index: int) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedBatch(f'a request needs "{key}" as a non-empty string', part=index)
    return value


def _media(content_type: str | None, *, strict: bool = False) -> tuple[str, dict[str, str]]:
    """Media type and parameters; an absent (or, unless ``strict``, unreadable) one is ""."""
    if not content_type:
        return "", {}
    try:
        return parse_media_type(content_type)
    except MalformedBatch as error:
        if strict:
            raise ValueError(error.detail) from None
        return "", {}


#: Deepest JSON body carried as a value; deeper ones go base64url (a reader's recursion limit
#: must not decide whether an answer can be read).
MAX_INLINE_DEPTH = 200


def _loads(data: bytes | bytearray | str) -> Any:
    """Strict JSON (RFC 8259): NaN, Infinity and numbers beyond a double are refused."""
    return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite)


def _dumps(value: Any) -> bytes:
    """Compact JSON in ASCII: a lone surrogate escape stays an escape, never raw bytes."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a double's range")
    return value


def _depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests, counted up to ``limit + 1`` at most (iteratively)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _is_binary(content_type: str | None) -> bool:
    """Whether a body of this type travels as base64url by rule (so needs no marker)."""
    media_type, _ = _media(content_type)  # untyped (or unreadable) bodies are binary too
    return not is_json(media_type) and not media_type.startswith("text/")


def encode_body(value: Any, content_type: str | None, *, strict: bool = True) -> bytes:
    """The bytes a JSON batch body stands for, by its media type; ValueError if it cannot.

    Untyped bodies are base64url, like any type that is neither JSON nor text; an unreadable
    Content-Type is refused, or (not ``strict``, reading a server's answer) untyped.
    """
    media_type, params = _media(content_type, strict=strict)
    if is_json(media_type):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return _dumps(value)  # a lone surrogate: as an escape, which JSON allows
    if not isinstance(value, str):
        raise ValueError(f"a {media_type or 'untyped'} body must be a string (base64url)")
    if media_type.startswith("text/"):
        charset = params.get("charset", "utf-8")
        try:
            return value.encode(charset)
        except (LookupError, UnicodeEncodeError) as error:
            raise ValueError(f"the body cannot be encoded as {charset}: {error}") from None
    try:
        # base64url as the format says; standard base64 and missing padding are accepted too.
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the body is not valid base64url") from None


def decode_body(body: bytes | bytearray, content_type: str | None) -> tuple[Any, bool]:
    """The JSON value that carries ``body``, and whether it had to be base64url."""
    media_type, params = _media(content_type)
    try:
        if is_json(media_type):
            value = _loads(body)
            # Only the brackets can nest: few of them, no need to walk the value.
            if body.count(b"[") + body.count(b"{") <= MAX_INLINE_DEPTH or (
                _depth(value, MAX_INLINE_DEPTH) <= MAX_INLINE_DEPTH
            ):
                return value, False
        if media_type.startswith("text/"):
            return body.decode(params.get("charset", "utf-8")), False
    except (ValueError, LookupError, RecursionError):
        pass  # not what its type says: sent losslessly as base64url, marked as such
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii"), True


class JsonResponseWriter:
    """Writes ``{"responses": [...]}`` one response at a time, so it can be streamed."""

    content_type = MEDIA_TYPE

    def __init__(self) -> None:
        self._written = 0

    def start(self) -> bytes:
        return b'{"responses":['

    def part(self, response: SubResponse, request: SubRequest) -> bytes:
        """One response object; raises ValueError if ``response`` cannot be sent."""
        fields, body = response_fields(response, head=request.method == "HEAD")
        encode_fields(fields)  # the same checks as on the wire: no CR, LF or NUL
        headers: dict[str, str | list[str]] = {}
        for name, value in fields:
            previous = headers.get(name)
            # A repeated header (several Set-Cookie) becomes a list: nothing is lost.
            headers[name] = value if previous is None else [*_as_list(previous), value]
        item: dict[str, Any] = {"id": request.content_id, "status": response.status}
        item["headers"] = headers
        if body:
            content_type = next((v for k, v in fields if k.lower() == "content-type"), None)
            item["body"], encoded = decode_body(body, content_type)
            if encoded and not _is_binary(content_type):
                item["bodyEncoding"] = "base64url"  # not what its type says: say how it came
        encoded_item = _dumps(item)  # before counting it: a failure here writes nothing
        separator = b"," if self._written else b""
        self._written += 1
        return separator + encoded_item

    def part_pieces(
        self, response: SubResponse, request: SubRequest
    ) -> tuple[bytes, bytes | bytearray, bytes]:
        """:meth:`part`, whole: a body is re-encoded into the JSON document, so it is copied."""
        return self.part(response, request), b"", b""

    def close(self) -> bytes:
        return b"]}"


def encode_json_requests(requests: Iterable[SubRequest]) -> bytes:
    """A JSON batch request body (the client side); ValueError for a body it cannot carry."""
    return join_json_requests(encode_json_request(request) for request in requests)


def join_json_requests(items: Iterable[bytes]) -> bytes:
    """The body of a JSON batch from requests each encoded by :func:`encode_json_request`."""
    return b'{"requests":[' + b",".join(items) + b"]}"


def encode_json_request(request: SubRequest) -> bytes:
    """One request of a JSON batch; ValueError for a body the format cannot carry."""
    item: dict[str, Any] = {
        "id": request.content_id,
        "method": request.method,
        "url": request.target,
        "headers": dict(request.headers),
    }
    if request.depends_on:
        item["dependsOn"] = list(request.depends_on)
    if request.body:
        content_type = next((v for k, v in request.headers if k.lower() == "content-type"), None)
        if content_type is None:
            raise ValueError("in the JSON batch format a request body needs a Content-Type")
        item["body"], encoded = decode_body(request.body, content_type)
        if encoded and not _is_binary(content_type):
            raise ValueError(
                f"the body is not valid {content_type}: the JSON batch format cannot carry it"
            )
    return _dumps(item)


def read_json_responses(body: bytes) -> list[tuple[str | None, SubResponse]]:
    """A JSON batch answer as (id of the request it answers, response) pairs."""
    try:
        document = _loads(body)
        items = document["responses"]
        return [_response(item) for item in items]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise MalformedBatch(f"the JSON batch answer is malformed: {error!r}") from None


def _response(item: dict[str, Any]) -> tuple[str | None, SubResponse]:
    """One response of an answer; an error for anything HTTP could not have carried."""
    status = item["status"]
    if type(status) is not int or not 100 <= status <= 999:
        raise TypeError(f"status {status!r} is not an HTTP status")
    fields = [
        (name, value)
        for name, values in item.get("headers", {}).items()
        for value in (values if isinstance(values, list) else [values])
    ]
    if not all(isinstance(value, str) for _, value in fields):
        raise TypeError("a header value is not a string")
    encode_fields(tuple(fields))  # ValueError: a name or value HTTP cannot carry
    content_type = next((v for k, v in fields if k.lower() == "content-type"), None)
    body = b""
    if "body" in item:
        marked = item.get("bodyEncoding") == "base64url"
        body = encode_body(item["body"], None if marked else content_type, strict=False)
        # A JSON body was re-serialised on the way: its length is the one that arrived.
        fields = [f for f in fields if f[0].lower() != "content-length"]
        fields.append(("Content-Length", str(len(body))))
    request_id = item.get("id")
    return (
        None if request_id is None else str(request_id),
        SubResponse(status, reason_phrase(status), tuple(fields), body),
    )


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]
