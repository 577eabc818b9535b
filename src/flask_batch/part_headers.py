"""Which headers a part carries: the batch request's it inherits, and its own that count.

Header rules (Google's): every header of the batch request applies to every part except
``Content-*``, ``Host`` and the hop-by-hop headers; a part's own header replaces the batch's.
``Host`` always stays the batch request's (a part's own is ignored). The *pinned* headers
(:data:`PINNED_HEADERS`, plus a route's own): who the client is and where the request came
from, as the proxies in front of the application set them, stay the batch request's too, and
a part that sends one is refused with a ``400`` part: no part can act as another user, host,
scheme, prefix or client (docs/design.md section 3).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from .targets import PartRefused

__all__ = [
    "DEFAULT_HEADER_RULES",
    "NOT_INHERITED",
    "PART_IGNORED",
    "PINNED_HEADERS",
    "TIED_HEADERS",
    "HeaderRules",
    "check_header_patterns",
    "connection_options",
    "inherited",
    "voided",
]

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
#: Headers that go with another: a part that brings the first without the second does not
#: inherit the batch request's second either. W3C Trace Context: a ``tracestate`` belongs to
#: the ``traceparent`` beside it, and would mislabel a part's own trace.
TIED_HEADERS = {"traceparent": "tracestate"}
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


def voided(own: Iterable[str]) -> tuple[str, ...]:
    """The batch request's headers a part no longer inherits because of its own (lower-case
    names, :meth:`HeaderRules.own_fields`), beyond those they replace: :data:`TIED_HEADERS`."""
    names = set(own)
    return tuple(tied for name, tied in TIED_HEADERS.items() if name in names and tied not in names)


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

        Raises :class:`PartRefused` for a pinned one.
        """
        try:
            verdict = self._verdicts[name]
        except KeyError:
            verdict = self._judge(name)
        if verdict is None:
            raise PartRefused(
                "Pinned header",
                f"a part may not send {name}: it is pinned to the batch request's value (set by "
                "the proxy in front of this application), which every part inherits",
            )
        return verdict

    def own_fields(
        self, headers: Iterable[tuple[str, str]], body_length: int
    ) -> tuple[list[tuple[str, str]], str | None]:
        """A part's own headers as they reach the application, and its ``Content-Length``.

        The one rule for every adapter: the headers :meth:`admit` lets through, names
        lower-cased, each replacing the batch request's of the same name (the adapter does
        that in its own shape); several ``Cookie`` headers joined into one with ``"; "``, as
        HTTP/2 servers pass them on (RFC 9113); the ``Content-Length`` that of the body the
        part carries, set when it has one or said one (None: none). Raises
        :class:`PartRefused` for a pinned header.
        """
        fields: list[tuple[str, str]] = []
        cookies: list[str] = []
        sized = body_length > 0
        verdicts = self._verdicts
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                sized = True
                continue
            verdict = verdicts.get(name)  # None: not judged yet, or pinned
            if verdict is None:
                verdict = self.admit(name)  # judges it, or raises for a pinned one
            if verdict:
                if lowered == "cookie":
                    cookies.append(value)
                else:
                    fields.append((lowered, value))
        if cookies:
            fields.append(("cookie", "; ".join(cookies)))
        return fields, str(body_length) if sized else None

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
