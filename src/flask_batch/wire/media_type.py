"""Media types (RFC 9110 section 8.3): a ``Content-Type`` read into its type and parameters,
and the boundary of a ``multipart/mixed`` one, checked and made."""

from __future__ import annotations

import re
import secrets
import uuid

from .errors import MalformedBatch, UnsupportedMediaType
from .fields import TOKEN_PATTERN

__all__ = [
    "boundary_of",
    "boundary_param",
    "multipart_type",
    "new_boundary",
    "odata_boundary",
    "parse_media_type",
]

# RFC 2046 bchars; the boundary may contain spaces but not end with one.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# A parameter after a semicolon; empty ones ("boundary=x;") are tolerated.
_PARAM = re.compile(
    r';\s*(?:([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*)?',
    re.DOTALL,
)


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a ``Content-Type`` value into its lower-cased media type and its parameters."""
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    rest = ";" + rest if rest else ""
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            raise MalformedBatch(f"unreadable parameters in Content-Type {value!r}")
        position = match.end()
        if match.group(1) is None:
            continue
        raw = match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        name = match.group(1).lower()
        if name in params:  # which one counts would be a guess, and readers guess differently
            raise MalformedBatch(f"the parameter {name!r} appears twice in {value!r}")
        params[name] = raw
    return media_type.strip().lower(), params


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/mixed`` Content-Type; refuses every other media type."""
    if not content_type:
        raise UnsupportedMediaType("a batch needs Content-Type: multipart/mixed; boundary=...")
    media_type, params = parse_media_type(content_type)
    if media_type != "multipart/mixed":
        raise UnsupportedMediaType(
            f"a batch must be multipart/mixed, not {media_type or content_type!r}"
        )
    return boundary_param(params)


def boundary_param(params: dict[str, str]) -> str:
    """The ``boundary`` of a ``multipart/mixed`` media type's parameters, checked."""
    boundary = params.get("boundary")
    if boundary is None:
        raise MalformedBatch("Content-Type multipart/mixed has no boundary parameter")
    if not _BOUNDARY.fullmatch(boundary):
        raise MalformedBatch(
            f"invalid multipart boundary {boundary[:80]!r}: RFC 2046 allows 1 to 70 characters "
            "from letters, digits and '()+_,-./:=? (spaces inside)"
        )
    return boundary


def multipart_type(boundary: str) -> str:
    """``multipart/mixed`` with ``boundary``, quoted unless it is a token (RFC 2045)."""
    if TOKEN_PATTERN.fullmatch(boundary):
        return f"multipart/mixed; boundary={boundary}"
    return f'multipart/mixed; boundary="{boundary}"'  # bchars hold no quote or backslash


def new_boundary() -> str:
    """A boundary no part can contain by accident or by design: 128 random bits."""
    return "batch_" + secrets.token_hex(16)


def odata_boundary(kind: str) -> str:
    """A boundary as OData's reference servers (ASP.NET Core OData, WCF Data Services) name
    them: ``batchresponse_<uuid>``, ``changesetresponse_<uuid>`` (``kind``); a random UUID
    (122 random bits), unquoted."""
    return f"{kind}_{uuid.uuid4()}"
