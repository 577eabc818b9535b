"""Where a part goes: its request-target resolved and confined, for every adapter alike.

A part's request-target is resolved against the batch request (origin-form, absolute-form on
the batch's own origin, or relative to the batch URL as OData sends them) and confined to the
application: another origin, user info, a path outside the application's root, and any
spelling of the batch endpoint itself are refused, each with a ``400`` part.

Paths are handled as bytes (percent-decoded), so each adapter decodes them as its own
specification says: Latin-1 for WSGI's ``PATH_INFO`` (PEP 3333), UTF-8 for ASGI's ``path``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

from .wire.errors import problem_response
from .wire.model import SubResponse, filled_tuple

__all__ = [
    "DEFAULT_PORTS",
    "MEMBER_INDEX_KEY",
    "PART_INDEX_KEY",
    "PART_KEY",
    "PATH_SAFE",
    "PartRefused",
    "Route",
    "Router",
    "origin",
    "server_host",
]

#: Marks a part's environ (WSGI) or scope (ASGI): a batch endpoint reached from a part refuses.
PART_KEY = "flask_batch.part"
#: A part's index in its batch (from 0, each member of a group counted), in its environ or
#: scope: a view learns its place (Azure Tables' errors name it), which no client can forge.
PART_INDEX_KEY = "flask_batch.part_index"
#: A group member's index in its group (from 0); absent outside a group.
MEMBER_INDEX_KEY = "flask_batch.member_index"
DEFAULT_PORTS = {"http": "80", "https": "443"}
#: Characters of a path kept as they are when the batch's own path is percent-encoded again.
PATH_SAFE = "/:@!$&'()*+,;="

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# "host:port" (CONNECT's authority-form) when the host does not look like a scheme (an IP).
_AUTHORITY_FORM = re.compile(r"[^/?#@]*:[0-9]*")


def server_host(name: str, port: str | int | None, scheme: str) -> str:
    """A ``Host`` value for a request that came without one: the server's name and port."""
    port = "" if port is None else str(port)
    if port and port != DEFAULT_PORTS.get(scheme):
        return f"{name}:{port}"
    return name


class PartRefused(Exception):
    """A sub-request this batch will not run; it is answered 400 and the batch goes on."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title

    def answer(self) -> SubResponse:
        """The 400 problem part that answers the refused part."""
        return problem_response(400, self.title, str(self))


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
    (root included); ``root`` the percent-decoded root the application is mounted at;
    ``endpoint_takes`` says which requests at the batch path (by method and query) are the
    endpoint's (:meth:`flask_batch.intake.Routing.takes`): by default every one.
    """

    def __init__(
        self,
        scheme: str,
        host: str,
        batch_path: bytes,
        root: bytes = b"",
        endpoint_takes: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._scheme = scheme
        self._host = host
        self._origin = origin(scheme, host)
        # Relative targets resolve against the batch URL.
        self._batch_url = "http://batch" + quote(batch_path, safe=PATH_SAFE)
        # Any spelling of this endpoint (/%62atch, /batch/) is refused; every other batch
        # endpoint refuses by the PART_KEY marker.
        self._batch_endpoint = batch_path.rstrip(b"/")
        self._endpoint_takes = endpoint_takes
        self._root = root
        #: The service root, percent-decoded: the batch URL's parent path (``/odata/`` for
        #: ``/odata/$batch``), within which a reference must resolve (flask_batch.references).
        self.service_root = batch_path[: batch_path.rfind(b"/") + 1]

    def url(self, target: str) -> str:
        """The absolute URL of an origin-form ``target`` on this batch's origin."""
        return f"{self._scheme}://{self._host}{target}"

    def route(self, target: str, method: str = "GET") -> Route:
        """Where ``target`` leads; raises :class:`PartRefused` if the part may not go there."""
        if method == "CONNECT":
            raise PartRefused(
                "Unsupported method", "CONNECT asks for a tunnel, which a batch part cannot open"
            )
        raw_path, query = self._resolve(target)
        path = unquote_to_bytes(raw_path) if "%" in raw_path else raw_path.encode()
        if path.rstrip(b"/") == self._batch_endpoint and (
            self._endpoint_takes is None or self._endpoint_takes(method, query)
        ):
            raise PartRefused("Nested batch", "a batch cannot contain another batch")
        root = self._root
        if root:
            if path != root and not path.startswith(root + b"/"):
                raise PartRefused(
                    "Outside the application",
                    f"{raw_path} is outside this application's root "
                    f"{root.decode('utf-8', 'replace')}",
                )
            return filled_tuple(Route, (raw_path, query, path, path[len(root) :]))
        return filled_tuple(Route, (raw_path, query, path, path))

    def _resolve(self, target: str) -> tuple[str, str]:
        """The raw (still percent-encoded) path and query string a request-target names.

        Origin-form, absolute-form on this origin, or a reference relative to the batch URL;
        anything naming another origin or no HTTP resource at all is refused: a scheme without
        ``//`` (``file:/etc/passwd``, ``https:/p``), authority-form (``host:443``), a
        network-path reference (``//evil.example/p``) to another host.
        """
        if target.startswith("//"):
            # A network-path reference: an authority, on the batch request's own scheme.
            return self._on_this_origin(target, f"{self._scheme}:{target}")
        if target.startswith("/"):
            path, _, query = target.partition("?")
            return path, query
        if target == "*":
            raise PartRefused(
                "Unsupported request target", "the asterisk-form target is not supported"
            )
        scheme = _SCHEME.match(target)
        if scheme is not None or _AUTHORITY_FORM.fullmatch(target):
            if scheme is None or not target.startswith("//", scheme.end()):
                raise PartRefused(
                    "Invalid request target",
                    f"{target[:80]}: a part's target is a path, a path relative to the batch "
                    "URL, or an absolute http(s) URL on this batch's origin",
                )
            return self._on_this_origin(target, target)
        # Relative to the batch URL, as OData clients send them.
        url = urlsplit(urljoin(self._batch_url, target))
        return url.path, url.query

    def _on_this_origin(self, target: str, absolute: str) -> tuple[str, str]:
        """The path and query of an absolute URL, refused unless it is on this origin."""
        try:
            url = urlsplit(absolute)
        except ValueError as error:  # a malformed authority, such as "http://[::1/x"
            raise PartRefused("Invalid request target", f"{target[:80]}: {error}") from None
        if url.username is not None or origin(url.scheme, url.netloc) != self._origin:
            raise PartRefused(
                "Cross-origin sub-request",
                f"{target[:80]} is not on this batch's origin {self._scheme}://{self._host}",
            )
        return url.path or "/", url.query


def origin(scheme: str, authority: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, the default port filled in; None for another
    scheme or an authority that is not a host with an optional port (``host:5000:80``)."""
    scheme = scheme.lower()
    default = DEFAULT_PORTS.get(scheme)
    try:
        url = urlsplit(f"//{authority}")
        host, port = url.hostname, url.port
    except ValueError:
        return None
    if default is None or not host or url.username is not None or url.password is not None:
        return None
    return scheme, host, int(default) if port is None else port
