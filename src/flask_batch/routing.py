"""Where a part goes and which headers it carries: the rules every adapter (WSGI, ASGI) shares.

A part's request-target is resolved against the batch request (origin-form, absolute-form on
the batch's own origin, or relative to the batch URL as OData sends them) and confined to the
application: another origin, user info, a path outside the application's root, and any
spelling of the batch endpoint itself are refused, each with a ``400`` part.

Header rules (Google's): every header of the batch request applies to every part except
``Content-*``, ``Host`` and the hop-by-hop headers; a part's own header replaces the batch's.
``Host`` always stays the batch request's (a part's own is ignored). The *pinned* headers
(:data:`PINNED_HEADERS`, plus a route's own): who the client is and where the request came
from, as the proxies in front of the application set them, stay the batch request's too, and
a part that sends one is refused with a ``400`` part: no part can act as another user, host,
scheme, prefix or client.

Paths are handled as bytes (percent-decoded), so each adapter decodes them as its own
specification says: Latin-1 for WSGI's ``PATH_INFO`` (PEP 3333), UTF-8 for ASGI's ``path``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
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
#: A part's own headers that are ignored: connection-level ones, its framing (the adapter sets
#: the Content-Length of the body the part carries; a JSON request's body is framed by the
#: JSON, and a multipart part's chunked body is decoded), and its Host (the batch's stays:
#: OData clients send one in every part).
PART_IGNORED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te"}
    | {"upgrade", "expect", "trailer", "proxy-connection", "http2-settings"}
)
#: Headers that only the batch request may carry (``*`` matches any characters, case does not
#: matter): the client's address, where the request came from and who the user is, as the
#: proxies, load balancers, CDNs and authenticating gateways in front of an application set
#: them. Each part inherits the batch request's; a part that sends its own is refused.
PINNED_HEADERS = (
    # Where the request came from (RFC 7239 and the de-facto X-Forwarded-* family, which
    # includes oauth2-proxy's X-Forwarded-User/-Email/-Groups and Envoy's -Client-Cert).
    "Forwarded",
    "X-Forwarded-*",
    "X-Original-Forwarded-For",
    "X-Real-IP",
    "X-Original-URL",
    "X-Original-URI",
    "X-Rewrite-URL",
    # The client's address, as CDNs and load balancers pass it.
    "CF-Connecting-IP",
    "CF-Connecting-IPv6",
    "True-Client-IP",
    "Fastly-Client-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "X-Azure-ClientIP",
    "X-Azure-SocketIP",
    # Who the user is, as authenticating proxies say it.
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Remote-User",
    "X-Remote-Group",
    "X-Remote-Extra-*",
    "X-Auth-Request-*",  # oauth2-proxy
    "X-Goog-Authenticated-User-*",  # Google Cloud IAP
    "X-Goog-IAP-*",
    "X-AppEngine-*",  # Google App Engine (X-AppEngine-Cron, -User-Email...)
    "X-CloudTasks-*",
    "X-CloudScheduler*",
    "X-MS-Client-Principal*",  # Azure App Service authentication
    "X-MS-Token-*",
    "X-Amzn-Oidc-*",  # AWS Application Load Balancer
    "X-Amzn-Mtls-*",
    "X-Amzn-Request-Context",  # AWS Lambda behind API Gateway
    "X-Apigateway-*",
    "Cf-Access-*",  # Cloudflare Access
    "X-Pomerium-*",
    "X-Vouch-*",
    "Tailscale-User-*",
    # The client's certificate, as TLS-terminating proxies pass it.
    "X-SSL-*",
    "X-Client-Cert*",
    "X-ARR-ClientCert",
    "Ssl-Client-*",
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# "host:port" (CONNECT's authority-form) when the host does not look like a scheme (an IP).
_AUTHORITY_FORM = re.compile(r"[^/?#@]*:[0-9]*")


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


def check_header_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """``patterns`` as a tuple, each checked to be a header name in which ``*`` may stand for
    any characters; ValueError names one that is not."""
    if isinstance(patterns, str):
        raise ValueError(
            f"pinned_headers must be a list of header names, not the string {patterns!r}"
        )
    try:
        checked = tuple(patterns)
    except TypeError:
        raise ValueError(
            f"pinned_headers must be a list of header names, not {patterns!r}"
        ) from None
    for pattern in checked:
        if not isinstance(pattern, str) or not _NAME_PATTERN.fullmatch(pattern):
            raise ValueError(
                f"pinned_headers: {pattern!r} is not a header name (a token, in which * stands "
                "for any characters)"
            )
    return checked


_NAME_PATTERN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HeaderRules:
    """Which of a part's own headers reach the application, for one route.

    A part's header is dropped if it is one of :data:`PART_IGNORED` or its name holds ``_``
    (``X_User`` and ``X-User`` would both become ``HTTP_X_USER`` in WSGI; gunicorn drops them
    too); a pinned header (:data:`PINNED_HEADERS` and ``pinned``) refuses the part.
    """

    def __init__(self, pinned: Iterable[str] = ()) -> None:
        self.pinned = (*PINNED_HEADERS, *check_header_patterns(pinned))
        self._pinned = re.compile(
            "|".join(fnmatch.translate(pattern.lower()) for pattern in self.pinned)
        )
        # Verdicts by name as sent (names repeat from part to part); bounded, since a client
        # chooses them: True reaches the application, False is dropped, None is pinned.
        self._verdicts: dict[str, bool | None] = {}

    def admit(self, name: str) -> bool:
        """Whether a part's own header ``name`` reaches the application.

        Raises :class:`Refused` for a pinned one.
        """
        try:
            verdict = self._verdicts[name]
        except KeyError:
            verdict = self._judge(name)
        if verdict is None:
            raise Refused(
                "Pinned header",
                f"a part may not send {name}: it is pinned to the batch request's value (set by "
                "the proxy in front of this application), which every part inherits",
            )
        return verdict

    def _judge(self, name: str) -> bool | None:
        lowered = name.lower()
        verdict: bool | None
        if self._pinned.match(lowered):
            verdict = None
        else:
            verdict = "_" not in name and lowered not in PART_IGNORED
        if len(self._verdicts) >= 1024:
            self._verdicts.clear()
        self._verdicts[name] = verdict
        return verdict


#: The rules of a route that pins nothing beyond the defaults.
DEFAULT_HEADER_RULES = HeaderRules()


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
        self._origin = origin(scheme, host)
        # Relative targets resolve against the batch URL.
        self._batch_url = "http://batch" + quote(batch_path, safe=PATH_SAFE)
        # Any spelling of this endpoint (/%62atch, /batch/) is refused; every other batch
        # endpoint refuses by the PART_KEY marker.
        self._batch_endpoint = batch_path.rstrip(b"/")
        self._root = root

    def route(self, target: str, method: str = "GET") -> Route:
        """Where ``target`` leads; raises :class:`Refused` if the part may not go there."""
        if method == "CONNECT":
            raise Refused(
                "Unsupported method", "CONNECT asks for a tunnel, which a batch part cannot open"
            )
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
            raise Refused("Unsupported request target", "the asterisk-form target is not supported")
        scheme = _SCHEME.match(target)
        if scheme is not None or _AUTHORITY_FORM.fullmatch(target):
            if scheme is None or not target.startswith("//", scheme.end()):
                raise Refused(
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
            raise Refused("Invalid request target", f"{target[:80]}: {error}") from None
        if url.username is not None or origin(url.scheme, url.netloc) != self._origin:
            raise Refused(
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
