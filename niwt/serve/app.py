"""The routes of ``niwt serve``, on the standard library's HTTP server.

=======  ==================  =====================================================================
GET      ``/``               the page (``?token=`` sets the token's cookie and drops it from the URL)
GET      ``/static/...``     the page's script and style sheet
GET      ``/report``         the run's report (the current run's, else the source's)
GET      ``/api/state``      the run: its classes, what each was given, its knowledge, where it is saved
POST     ``/api/images``     an image (the body; ``?name=`` its label, ``?top_k=``): its classes, map, words, neurons
POST     ``/api/rank``       ``{"ids": [...], "top_k": 5}``: those images ranked again (after a change)
POST     ``/api/explain``    ``{"id": ..., "class": ...}``: an image's map, words and neurons for another class
POST     ``/api/teach``      ``{"name": ..., "description": ...}`` or ``{"name": ..., "attributes": {...}}``
POST     ``/api/forget``     ``{"name": ...}``
=======  ==================  =====================================================================

Every request is checked before anything else (:mod:`niwt.serve.access`): its ``Host``, its
token (403 without it, on every route, the page included), and for a POST its origin. A body is
read only when it declares its length (411 otherwise) and the length is within the cap (413
beyond, read no further). Input errors answer 400 with ``{"error": message}`` (the message names
the field, what it must be, and how to fix it); a change refused because the run changed on disk
answers 409. Nothing a request says becomes a path.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from niwt.errors import DataError, NIWTError, RunDirectoryError
from niwt.runs.teach import MAX_DESCRIPTION, MAX_NAME
from niwt.serve.access import Access
from niwt.serve.images import MAX_PIXELS
from niwt.serve.page import PAGE_STYLE, SCRIPT, SCRIPT_PATH, STYLE_PATH, page_html
from niwt.serve.session import ImageGone, Session, ids_of, lesson_of

__all__ = ["MAX_BODY", "MAX_JSON", "MAX_TOP_K", "make_handler"]

log = logging.getLogger(__name__)

MAX_BODY = 20 * 1024 * 1024
"""The largest request body (bytes): one image of up to 20 MiB."""

MAX_JSON = 64 * 1024
"""The largest JSON body (bytes): a class's name and description are far smaller."""

MAX_TOP_K = 20
"""The most classes listed per image."""

_DRAIN_SECONDS = 2.0
_DRAIN_BYTES = 256 * 1024 * 1024

_PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
             "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"


class HttpError(Exception):
    """An answer other than 200: its status and its message (JSON for the API, plain text otherwise)."""

    def __init__(self, status: HTTPStatus, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


def _top_k(value: object) -> int:
    try:
        k = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"`top_k` must be a whole number from 1 to {MAX_TOP_K}, got {value!r}") from None
    if isinstance(value, bool) or not 1 <= k <= MAX_TOP_K:
        raise DataError(f"`top_k` must be a whole number from 1 to {MAX_TOP_K}, got {value!r}")
    return k


def make_handler(session: Session, access: Access, *, max_body: int = MAX_BODY) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one server: ``session`` serves the run, ``access`` says who may ask."""
    title = f"niwt serve: {session.source.name}"
    limits = {"upload_bytes": max_body, "pixels": MAX_PIXELS, "name": MAX_NAME, "description": MAX_DESCRIPTION,
              "images": session.max_images, "top_k": MAX_TOP_K}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60  # seconds a connection may stay silent (a slow or idle client never holds a thread for long)

        def version_string(self) -> str:  # no Python version in the Server header
            return "niwt"

        # -- plumbing ------------------------------------------------------------------------------

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            text = format % args
            log.debug("%s %s", self.address_string(), text.split("?", 1)[0] if "token=" in text else text)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None,
                  *, close: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, payload: Any, status: HTTPStatus = HTTPStatus.OK, *, close: bool = False) -> None:
            self._send(status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", close=close)

        def _error(self, err: HttpError, api: bool) -> None:
            """Answer ``err``; a body the request declared and the server did not read closes the
            connection (it would otherwise be read as the next request), after a short drain."""
            unread = self._unread()
            close = err.close or unread != 0
            if api and err.status != HTTPStatus.FORBIDDEN:
                self._json({"error": err.message}, err.status, close=close)
            else:
                self._send(err.status, (err.message + "\n").encode("utf-8"), "text/plain; charset=utf-8",
                           close=close)
            if unread > 0:
                self._drain(unread)

        def _unread(self) -> int:
            """Bytes of the request's body not read (-1: a body of unknown length)."""
            if self._body_read:
                return 0
            if self.headers.get("Transfer-Encoding"):
                return -1
            raw = self.headers.get("Content-Length")
            try:
                return max(0, int(raw)) if raw is not None else 0
            except ValueError:
                return -1

        def _drain(self, length: int) -> None:
            """Read and drop what the client still sends of a refused body, for a short while, so
            that it receives the refusal instead of a reset connection; nothing of it is kept."""
            left, end = min(length, _DRAIN_BYTES), time.monotonic() + _DRAIN_SECONDS
            try:
                self.connection.settimeout(0.2)
                while left > 0 and time.monotonic() < end:
                    ready, _, _ = select.select([self.connection], [], [], 0.2)
                    if not ready:
                        continue
                    chunk = self.connection.recv(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            except OSError:
                pass

        def _body(self, limit: int) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not in chunks",
                                close=True)
            raw = self.headers.get("Content-Length")
            if raw is None:
                raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length header", close=True)
            try:
                length = int(raw)
                if length < 0:
                    raise ValueError(raw)
            except ValueError:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a number of bytes, got {raw!r}",
                                close=True) from None
            if length > limit:
                raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                f"the request body is {_mib(length)}; the server takes at most {_mib(limit)} in one "
                                "request"
                                + (" (one image of at most that size): send a smaller image" if limit == max_body
                                   else ""), close=True)
            data = self.rfile.read(length)
            self._body_read = True
            if len(data) < length:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"the request body ended after {len(data)} of its {length} "
                                "bytes; send it again", close=True)
            return data

        def _json_body(self) -> dict[str, Any]:
            kind = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                f"send this request as JSON (Content-Type: application/json), got {kind or 'none'!r}")
            data = self._body(MAX_JSON)
            try:
                body = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise DataError(f"the request body is not JSON ({err}); send a JSON object") from None
            if not isinstance(body, dict):
                raise DataError(f"the request body must be a JSON object, got {type(body).__name__}")
            return body

        # -- the checks every request goes through -------------------------------------------------

        def _check(self, url: Any, write: bool) -> None:
            if not access.host_allowed(self.headers.get("Host")):
                raise HttpError(HTTPStatus.FORBIDDEN, "403 Forbidden: the Host header does not name this server; "
                                "open the URL niwt serve printed")
            if not access.token_ok(access.given_token(self.headers, url.query)):
                raise HttpError(HTTPStatus.FORBIDDEN, "403 Forbidden: this niwt server needs its token; open the "
                                "URL niwt serve printed (it ends with ?token=...)")
            if write and not access.origin_allowed(self.headers):
                raise HttpError(HTTPStatus.FORBIDDEN, "403 Forbidden: a request from another page")

        def _handle(self) -> None:
            url = urlsplit(self.path)
            api = url.path.startswith("/api/")
            self._body_read = False
            try:
                self._check(url, write=self.command == "POST")
                self._route(url)
            except HttpError as err:
                self._error(err, api)
            except ImageGone as err:
                self._error(HttpError(HTTPStatus.NOT_FOUND, str(err)), api)
            except RunDirectoryError as err:
                self._error(HttpError(HTTPStatus.CONFLICT, f"{err}. The page now shows the run as it is on disk."),
                            api)
            except NIWTError as err:
                self._error(HttpError(HTTPStatus.BAD_REQUEST, str(err)), api)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                self.close_connection = True
            except Exception as err:  # noqa: BLE001 - the server stays up; the page says what happened
                log.exception("internal error on %s %s", self.command, url.path)
                self._error(HttpError(HTTPStatus.INTERNAL_SERVER_ERROR,
                                      f"internal error: {type(err).__name__}: {err}; this is a bug in niwt, not in "
                                      "your input (the server log has the traceback)"), api)

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            self._handle()

        def do_HEAD(self) -> None:  # noqa: N802
            self._handle()

        def do_POST(self) -> None:  # noqa: N802
            self._handle()

        def _other(self) -> None:
            self._handle()

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other  # noqa: N815 - answered 405 after the checks

        # -- the routes ----------------------------------------------------------------------------

        def _route(self, url: Any) -> None:
            routes = {("GET", "/"): self._page, ("GET", SCRIPT_PATH): self._script,
                      ("GET", STYLE_PATH): self._style, ("GET", "/report"): self._report,
                      ("GET", "/api/state"): self._state, ("POST", "/api/images"): self._image,
                      ("POST", "/api/rank"): self._rank, ("POST", "/api/explain"): self._explain,
                      ("POST", "/api/teach"): self._teach, ("POST", "/api/forget"): self._forget}
            method = "GET" if self.command == "HEAD" else self.command
            handler = routes.get((method, url.path))
            if handler is None:
                allowed = sorted(m for m, p in routes if p == url.path)
                if allowed:
                    raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{url.path} answers {', '.join(allowed)} only")
                raise HttpError(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
            handler(url)

        def _page(self, url: Any) -> None:
            if "token" in parse_qs(url.query):  # keep it in a cookie, out of the address bar and history
                self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": access.set_cookie()})
                return
            self._send(HTTPStatus.OK, page_html(access.token, title).encode("utf-8"), "text/html; charset=utf-8",
                       {"Content-Security-Policy": _PAGE_CSP})

        def _script(self, url: Any) -> None:
            self._send(HTTPStatus.OK, SCRIPT.encode("utf-8"), "text/javascript; charset=utf-8")

        def _style(self, url: Any) -> None:
            self._send(HTTPStatus.OK, PAGE_STYLE.encode("utf-8"), "text/css; charset=utf-8")

        def _report(self, url: Any) -> None:
            path, about = session.report_path()
            if path is None:
                raise HttpError(HTTPStatus.NOT_FOUND, f"the run has no report: {about}")
            self._send(HTTPStatus.OK, path.read_bytes(), "text/html; charset=utf-8",
                       {"Content-Security-Policy": _REPORT_CSP})

        def _state(self, url: Any) -> None:
            self._json(session.state(limits))

        def _image(self, url: Any) -> None:
            query = parse_qs(url.query)
            top_k = _top_k(query.get("top_k", ["5"])[-1])
            data = self._body(max_body)
            held = session.add_image(data, query.get("name", ["image"])[-1])
            self._json(session.rank(held, top_k))

        def _rank(self, url: Any) -> None:
            body = self._json_body()
            top_k = _top_k(body.get("top_k", 5))
            out = []
            for image_id in ids_of(body.get("ids"), session.max_images):
                try:
                    out.append(session.rank(session.image(image_id), top_k))
                except ImageGone as err:
                    out.append({"id": image_id, "error": str(err)})
            self._json({"images": out})

        def _explain(self, url: Any) -> None:
            body = self._json_body()
            self._json(session.explain(session.image(body.get("id")), body.get("class")))

        def _teach(self, url: Any) -> None:
            change = session.teach(lesson_of(self._json_body()))
            self._json(change.to_dict())

        def _forget(self, url: Any) -> None:
            body = self._json_body()
            unknown = sorted(set(body) - {"name"})
            if unknown:
                raise DataError(f"unknown field(s) {unknown}: a class to forget has only `name`")
            self._json(session.forget(body.get("name")).to_dict())

    return Handler
