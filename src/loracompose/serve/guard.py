"""Checks on a request's headers alone, before any route runs: the Host (DNS rebinding), the API key,
the body's declared size.

With an API key set, every route but the open ones (/health and the static playground page) needs
`Authorization: Bearer <key>` (the page holds no data; it sends the key the user types on each API call).
Without one, only requests whose Host header names loopback, the bound host or an --allowed-host are
answered (403 otherwise), so a web page cannot reach a local server through DNS rebinding.
"""

from __future__ import annotations

import hmac
from typing import Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from loracompose.serve.engine import shown
from loracompose.serve.errors import error_response

OPEN_PATHS = {"/health", "/", "/playground.js"}
ADMIN_PREFIX = "/admin/"


def bearer_matches(request: Request, key: str) -> bool:
    """Whether the request carries `Authorization: Bearer <key>` (compared in constant time)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _allowed_hosts(settings) -> set[str]:
    hosts = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in settings.allowed_hosts)}
    if settings.host not in ("0.0.0.0", "::", ""):
        hosts.add(settings.host.lower())
    return hosts


def _host_allowed(header: str | None, hosts: set[str]) -> bool:
    """Whether a Host header ('name', 'name:port', '[::1]:port') names an allowed host; none at all is allowed."""
    if header is None:
        return True  # HTTP/1.0 clients; a browser always sends Host
    name = header.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name in hosts or name.startswith("127.") and name.replace(".", "").isdigit()


class Guard:
    """ASGI middleware: answer a request that `refusal` refuses on its headers; pass the rest on."""

    def __init__(self, app, refusal):
        self.app, self.refusal = app, refusal

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            refused = self.refusal(Request(scope))
            if refused is not None:
                return await refused(scope, receive, send)
        await self.app(scope, receive, send)


def header_refusal(settings, api_key: str | None) -> Callable[[Request], JSONResponse | None]:
    """The function answering a request refused on its headers alone (or returning None to pass it on)."""
    hosts = _allowed_hosts(settings)

    def refusal(request: Request) -> JSONResponse | None:
        if not api_key and not _host_allowed(request.headers.get("host"), hosts):
            # Without a key, a page in the user's browser could reach a loopback server through a DNS name
            # it controls (DNS rebinding); the Host header still carries that name.
            return error_response(403, f"host '{shown(request.headers.get('host'))}' is not served: without an "
                                       f"API key this server answers only {', '.join(sorted(hosts))} (and "
                                       "127.0.0.0/8); add names with --allowed-host, or set --api-key")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return error_response(413, f"the request body is larger than {settings.max_body_bytes} bytes")
        if request.method == "POST" and length is None:
            return error_response(411, "send the request body with a Content-Length header")
        # /admin routes check their own key (the admin key, else the API key): serve/routes.py.
        if api_key and request.url.path not in OPEN_PATHS and not request.url.path.startswith(ADMIN_PREFIX):
            if not bearer_matches(request, api_key):
                return error_response(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                                      headers={"WWW-Authenticate": "Bearer"})
        return None

    return refusal
