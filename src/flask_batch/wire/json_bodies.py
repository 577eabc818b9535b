"""How a body travels in a JSON batch, both ways: a JSON body as the JSON value itself
(its exact text, never rebuilt), a ``text/*`` body as a string in its charset, anything else
as base64url; and the strict JSON (RFC 8259) the JSON format reads and writes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from .errors import MalformedBatch
from .jsontext import (
    Buffer,
    InvalidJson,
    JsonText,
    NotUtf8,
    ascii_value_span,
)
from .media_type import parse_media_type

__all__ = [
    "MEDIA_TYPE",
    "body_media_type",
    "body_to_string",
    "decode_base64url",
    "dumps_compact",
    "is_base64url_type",
    "is_json",
    "json_value_span",
    "loads_read",
    "loads_strict",
    "string_to_body",
]

MEDIA_TYPE = "application/json"


def is_json(media_type: str) -> bool:
    return media_type == MEDIA_TYPE or media_type.endswith("+json")


_BASE64 = re.compile(rb"[A-Za-z0-9+/_-]*+={0,2}")
_TO_STANDARD_BASE64 = bytes.maketrans(b"-_", b"+/")
_BASE64_PIECE = 64 * 1024  # a multiple of 4: whole quantums


def decode_base64url(data: Buffer, start: int = 0, end: int = -1, limit: int = -1) -> bytes:
    """The bytes ``data[start:end]`` stands for in base64url (standard base64 and missing
    padding are accepted too), decoded in pieces; ValueError if it is not base64url.

    With a ``limit``, decoding stops once the bytes are longer (the caller refuses them).
    """
    end = len(data) if end < 0 else end
    padding = -(end - start) % 4
    if _BASE64.fullmatch(data, start, end) is None or (
        data[max(start, end - 2) : end].count(b"=") + padding > 2
    ):
        raise ValueError("the body is not valid base64url")
    pieces = []
    size = 0
    for piece_start in range(start, end, _BASE64_PIECE):
        piece = data[piece_start : min(end, piece_start + _BASE64_PIECE)]
        piece = piece.translate(_TO_STANDARD_BASE64)
        if piece_start + _BASE64_PIECE >= end:
            piece += b"=" * padding
        pieces.append(binascii.a2b_base64(piece))
        size += len(pieces[-1])
        if 0 <= limit < size:
            break
    return b"".join(pieces)


def body_media_type(
    content_type: str | None, *, strict: bool = False
) -> tuple[str, dict[str, str]]:
    """Media type and parameters; an absent (or, unless ``strict``, unreadable) one is ""."""
    if not content_type:
        return "", {}
    try:
        return parse_media_type(content_type)
    except MalformedBatch as error:
        if strict:
            raise ValueError(error.detail) from None
        return "", {}


def loads_strict(data: bytes | bytearray | str) -> Any:
    """Strict JSON (RFC 8259): NaN, Infinity and numbers beyond a double are refused.

    What ``json.loads(data, parse_constant=..., parse_float=...)`` reads, with one decoder
    made once (``json.loads`` builds one whenever an option is given: 3 of its 4 µs for a
    short value): bytes decoded as it decodes them, a str with a byte order mark refused as
    it refuses it."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        return _STRICT.decode(data)
    return _STRICT.decode(data.decode(json.detect_encoding(data), "surrogatepass"))


def loads_read(data: bytes) -> Any:
    """:func:`loads_strict` of a value a :class:`~.jsontext.JsonText` has read (strict JSON,
    UTF-8 already): decoded without looking for another encoding first."""
    return _STRICT.decode(data.decode("utf-8", "surrogatepass"))


def dumps_compact(value: Any) -> bytes:
    """Compact JSON in ASCII: a lone surrogate escape stays an escape, never raw bytes."""
    return _COMPACT.encode(value).encode("ascii")


#: What ``json.dumps(value, separators=(",", ":"), allow_nan=False)`` makes for each call (it
#: builds an encoder whenever an option is given), made once: 0.7 µs of about 3 an answer.
_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a double's range")
    return value


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def is_base64url_type(content_type: str | None) -> bool:
    """Whether a body of this type travels as base64url by rule (so needs no marker)."""
    media_type, _ = body_media_type(content_type)  # untyped (or unreadable) bodies are binary too
    return not is_json(media_type) and not media_type.startswith("text/")


def string_to_body(value: Any, content_type: str | None) -> bytes:
    """The bytes a text or binary answer body (a JSON string) stands for, by its media type;
    ValueError if it cannot. Untyped bodies, and those of an unreadable Content-Type, are
    base64url, like any type that is neither JSON nor text (a JSON body is its own text)."""
    media_type, params = body_media_type(content_type)
    if not isinstance(value, str):
        raise ValueError(f"a {media_type or 'untyped'} body must be a string (base64url)")
    if media_type.startswith("text/"):
        charset = params.get("charset", "utf-8")
        try:
            return value.encode(charset)
        except (LookupError, UnicodeEncodeError) as error:
            raise ValueError(f"the body cannot be encoded as {charset}: {error}") from None
    try:
        return decode_base64url(value.encode("ascii"))
    except UnicodeEncodeError:
        raise ValueError("the body is not valid base64url") from None


def body_to_string(
    body: bytes | bytearray, content_type: str | None, *, standard_base64: bool = False
) -> tuple[str, bool]:
    """The JSON string that carries a text or binary ``body``, and whether it had to be
    base64url: text in its charset, anything else (a JSON type whose body is not valid
    JSON text included) base64url, or padded standard base64 if ``standard_base64`` (as
    Microsoft Graph sends binary bodies, and its Python client decodes them). A valid JSON
    body goes as its own text instead (:func:`json_value_span`)."""
    media_type, params = body_media_type(content_type)
    if media_type.startswith("text/"):
        try:
            return body.decode(params.get("charset", "utf-8")), False
        except (ValueError, LookupError):
            pass  # not what its type says: sent losslessly as base64url, marked as such
    if standard_base64:
        return base64.b64encode(body).decode("ascii"), True
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii"), True


def json_value_span(data: bytes | bytearray) -> tuple[int, int] | None:
    """Where the one JSON value ``data`` holds starts and ends, as a JSON batch reader accepts
    it (strict, UTF-8, at most :data:`~.jsontext.MAX_DEPTH` levels deep), without the white
    space around it; None if it holds anything else. Nothing is built, nothing copied."""
    if data.isascii():  # most bodies: no decoder and no text to set up (a third of the time)
        return ascii_value_span(data)
    try:
        text = JsonText(data)
        start = text.space(text.start)
        end = text.value_end(start)
    except (NotUtf8, InvalidJson):
        return None
    return (start, end) if text.space(end) == len(data) else None
