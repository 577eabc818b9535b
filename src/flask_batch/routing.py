"""Where a part goes and which headers it carries: the rules every adapter (WSGI, ASGI) shares.

A part's request-target is resolved against the batch request (origin-form, absolute-form on
the batch's own origin, or relative to the batch URL as OData sends them) and confined to the
application: another origin, user info, a path outside the application's root, and any
spelling of the batch endpoint itself are refused, each with a ``400`` part.

Header rules (Google's): every header of the batch request applies to every part except
``Content-*``, ``Host`` and the hop-by-hop headers; a part's own header replaces the batch's.
``Host``, ``Forwarded``, ``X-Forwarded-*`` and ``X-Real-IP`` always stay the batch request's,
so a part cannot pose as another host, scheme, prefix or client.

Paths are handled as bytes (percent-decoded), so each adapter decodes them as its own
specification says: Latin-1 for WSGI's ``PATH_INFO`` (PEP 3333), UTF-8 for ASGI's ``path``.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

#: Marks a part's environ (WSGI) or scope (ASGI): a batch endpoint reached from a part refuses.
PART_KEY = "flask_batch.part"
DEFAULT_PORTS = {"http": "80", "https": "443"}
#: Characters of a path kept as they are when the batch's own path is percent-encoded again.
PATH_SAFE = "/:@!$&'()*+,;="

#: Headers of the batch request no part inherits (besides ``Content-*`` and ``Proxy-*``, and
#: the headers ``Connection`` names): they describe the batch's connection or its body.
NOT_INHERITED = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "expect", "trailer"}
)
_NOT_INHERITED_PREFIXES = ("content-", "proxy-")
#: A part's own headers that are ignored: connection-level ones, its Content-Length (the adapter
#: sets the real one), and those that say where the request came from (the batch's stay).
PART_IGNORED = frozenset(
    {"host", "content-length", "connection", "keep-alive", "te", "upgrade", "expect", "trailer"}
    | {"forwarded", "x-real-ip"}
)
_PART_IGNORED_PREFIXES = ("x-forwarded-",)
_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def connection_options(connection: str | None) -> frozenset[str]:
    """The header names a ``Connection`` header lists (lower-case): hop-by-hop as well."""
    if not connection:
        return frozenset()
    return frozenset(name.strip().lower() for name in connection.split(","))


def inherited(name: str, listed: frozenset[str] = frozenset()) -> bool:
    """Whether a part inherits the batch request's header ``name`` (lower-case).

    ``listed``: the names the batch's ``Connection`` header lists (:func:`connection_options`).
    """
    return (
        name not in NOT_INHERITED
        and not name.startswith(_NOT_INHERITED_PREFIXES)
        and name not in listed
    )


def from_part(name: str) -> bool:
    """Whether a part's own header ``name`` (as sent) reaches the application.

    A name with ``_`` is dropped: ``X_User`` and ``X-User`` would both become ``HTTP_X_USER``
    in WSGI (gunicorn drops them too), and ASGI applications behind a WSGI bridge alike.
    """
    lowered = name.lower()
    return (
        "_" not in name
        and lowered not in PART_IGNORED
        and not lowered.startswith(_PART_IGNORED_PREFIXES)
    )


def normal_host(host: str, scheme: str) -> str:
    """``host[:port]`` lower-cased, without the scheme's default port."""
    host = host.lower()
    default = DEFAULT_PORTS.get(scheme.lower())
    if default and host.endswith(f":{default}"):
        host = host[: -len(default) - 1]
    return host


def server_host(name: str, port: str | int | None, scheme: str) -> str:
    """A ``Host`` value for a request that came without one: the server's name and port."""
    port = "" if port is None else str(port)
    if port and port != DEFAULT_PORTS.get(scheme):
        return f"{name}:{port}"
    return name


class Refused(Exception):
    """A sub-request this batch will not run; it is answered 400 and the batch goes on."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title


class Route(NamedTuple):
    """Where a part's request-target leads, inside this application."""

    #: The path as sent (percent-encoding kept), from the origin's root: ``/api/a%2Fb``.
    raw_path: str
    #: The query string as sent, without the ``?``.
    query: str
    #: ``raw_path`` percent-decoded.
    path: bytes
    #: ``path`` below the application's root (``SCRIPT_NAME`` / ``root_path``).
    local: bytes


class Router:
    """Resolves and confines the request-targets of one batch's parts.

    ``batch_path`` is the percent-decoded path of the batch request from the origin's root
    (root included); ``root`` the percent-decoded root the application is mounted at.
    """

    def __init__(self, scheme: str, host: str, batch_path: bytes, root: bytes = b"") -> None:
        self._scheme = scheme
        self._host = host
        self._origin = (scheme.lower(), normal_host(host, scheme))
        # Relative targets resolve against the batch URL.
        self._batch_url = "http://batch" + quote(batch_path, safe=PATH_SAFE)
        # Any spelling of this endpoint (/%62atch, /batch/) is refused; every other batch
        # endpoint refuses by the PART_KEY marker.
        self._batch_endpoint = batch_path.rstrip(b"/")
        self._root = root

    def route(self, target: str) -> Route:
        """Where ``target`` leads; raises :class:`Refused` if the part may not go there."""
        raw_path, query = self._resolve(target)
        path = unquote_to_bytes(raw_path) if "%" in raw_path else raw_path.encode()
        if path.rstrip(b"/") == self._batch_endpoint:
            raise Refused("Nested batch", "a batch cannot contain another batch")
        root = self._root
        if root:
            if path != root and not path.startswith(root + b"/"):
                raise Refused(
                    "Outside the application",
                    f"{raw_path} is outside this application's root "
                    f"{root.decode('utf-8', 'replace')}",
                )
            return Route(raw_path, query, path, path[len(root) :])
        return Route(raw_path, query, path, path)

    def _resolve(self, target: str) -> tuple[str, str]:
        """The raw (still percent-encoded) path and query string a request-target names."""
        if target.startswith("/"):
            path, _, query = target.partition("?")
            return path, query
        if _ABSOLUTE_FORM.match(target):
            try:
                url = urlsplit(target)
            except ValueError as error:  # a malformed authority, such as "http://[::1/x"
                raise Refused("Invalid request target", f"{target}: {error}") from None
            origin = (url.scheme.lower(), normal_host(url.netloc, url.scheme))
            if url.username is not None or origin != self._origin:
                raise Refused(
                    "Cross-origin sub-request",
                    f"{url.scheme}://{url.netloc} is not this batch's origin "
                    f"{self._scheme}://{self._host}",
                )
            return url.path or "/", url.query
        if target == "*":
            raise Refused("Unsupported request target", "the asterisk-form target is not supported")
        # Relative to the batch URL, as OData clients send them.
        url = urlsplit(urljoin(self._batch_url, target))
        return url.path, url.query
