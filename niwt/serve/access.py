"""Who may ask the server anything: the holder of its token, through an address it listens on,
from its own page.

* **The token**: made anew at each start (:func:`new_token`, 256 random bits) and printed in the
  page's URL. A request carries it as ``?token=`` (the page's URL; the page then sets it as an
  HttpOnly, SameSite=Strict cookie and drops it from the address bar), as the cookie, or as the
  ``X-NIWT-Token`` header (the page's script). Without it **every** request, the page and its
  script included, is refused with 403, as Jupyter does: no other page in the browser and no other
  user of the machine can use or teach the run. Tokens are compared in constant time.
* **The Host header** must name the address the server listens on (an IP address, ``localhost``
  or the host it was given) and its port: a page whose own name was made to resolve to this
  machine (DNS rebinding) is refused before its token is even read.
* **Cross-origin requests** are refused: a request whose ``Origin`` is not the server's own, or
  that the browser marks as cross-site (``Sec-Fetch-Site``).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

__all__ = ["HEADER", "Access", "new_token", "is_loopback"]

HEADER = "X-NIWT-Token"
"""The request header that carries the token (the page's script sends it)."""


def new_token() -> str:
    """A fresh secret token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _split_host(value: str) -> tuple[str, int | None]:
    """``"127.0.0.1:8000"`` -> ``("127.0.0.1", 8000)``; ``"[::1]:80"`` -> ``("::1", 80)``; no port -> None."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        return name, int(port) if port else None
    except ValueError:
        return name, -1


@dataclass(frozen=True)
class Access:
    """The rules of one server: its token, the host and port it listens on.

    Attributes:
        token: the secret.
        host: the host it was asked to listen on (``127.0.0.1`` by default).
        port: the port it listens on.
    """

    token: str
    host: str
    port: int

    @property
    def cookie_name(self) -> str:
        """The cookie of this server's token: one per port, as cookies are shared by every port of a host."""
        return f"niwt-token-{self.port}"

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request's ``Host`` header names this server: its port, and an IP address,
        ``localhost`` or the host it listens on (never another name: DNS rebinding)."""
        if not header:
            return False
        name, port = _split_host(header)
        if port != self.port:
            return False
        return name in ("localhost", self.host.lower().strip("[]")) or _is_ip(name)

    def origin_allowed(self, headers: Mapping[str, str]) -> bool:
        """Whether a request comes from the server's own page (or from no page: a script, curl)."""
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = headers.get("Origin")
        if origin is None:
            return True
        return origin == f"http://{headers.get('Host', '')}"

    def given_token(self, headers: Mapping[str, str], query: str) -> str | None:
        """The token a request carries: its header, its ``?token=``, or its cookie (in that order)."""
        value = headers.get(HEADER)
        if value:
            return value
        given = parse_qs(query, keep_blank_values=True).get("token")
        if given:
            return given[-1]
        raw = headers.get("Cookie")
        if raw:
            try:
                jar = SimpleCookie(raw)
            except CookieError:
                return None
            morsel = jar.get(self.cookie_name)
            if morsel is not None:
                return morsel.value
        return None

    def token_ok(self, given: str | None) -> bool:
        """Whether ``given`` is the token (compared in constant time)."""
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.token.encode("ascii"))

    def set_cookie(self) -> str:
        """The ``Set-Cookie`` value that keeps the token for the page's later requests."""
        return f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
