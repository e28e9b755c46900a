"""Starting and stopping ``niwt serve``: the standard library's threading HTTP server on one
address (127.0.0.1 unless another host is asked for, with a warning), a new token at each start,
and the URL that carries it.

``with RunServer(run_dir, ServeOptions(port=0)) as server:`` serves in a background thread (what
the tests and benchmarks do); :func:`serve` is the command: it prints the URL and serves until
interrupted.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from niwt.errors import ConfigError
from niwt.runs import load_run
from niwt.serve.access import Access, is_loopback, new_token
from niwt.serve.app import MAX_BODY, make_handler
from niwt.serve.session import Session

__all__ = ["ServeOptions", "RunServer", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """How to serve a run.

    Attributes:
        host: the address to listen on (default: this machine only).
        port: the port (0: one the system chooses).
        in_place: save every change into the run itself (default: as a new run beside it).
        open_browser: open the page in the default browser once the server listens.
        max_body: the largest request body, in bytes.
        read_dataset: read the run's dataset once for its classes' descriptions.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    in_place: bool = False
    open_browser: bool = False
    max_body: int = MAX_BODY
    read_dataset: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be a port number from 0 to 65535 (0: any free port), got {self.port!r}")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(f"--host must be an address to listen on, such as 127.0.0.1, got {self.host!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64


class _Server6(_Server):
    address_family = socket.AF_INET6


class RunServer:
    """A server on one finished run (see the module docstring).

    Raises:
        RunFormatError: ``run`` is not a finished run niwt can read.
        ConfigError: the address cannot be listened on (said why, with what to do).
    """

    def __init__(self, run: str | Path, options: ServeOptions | None = None) -> None:
        self.options = options or ServeOptions()
        host = self.options.host
        if not is_loopback(host):
            log.warning("listening on %s, not on this machine alone: anyone who can reach it and has the URL's token "
                        "can see the run and teach it", host)
        self.session = Session(load_run(run), in_place=self.options.in_place, read_dataset=self.options.read_dataset)
        bind = host.strip("[]")
        server_class = _Server6 if ":" in bind else _Server
        self.httpd = server_class((bind, self.options.port), None, bind_and_activate=False)  # the handler needs the port
        try:
            self.httpd.server_bind()
            self.httpd.server_activate()
        except OSError as err:
            self.httpd.server_close()
            raise ConfigError(f"cannot listen on {host} port {self.options.port} ({err.strerror or err}); give "
                              "another --port (0: any free port) or --host") from None
        self.port = int(self.httpd.server_address[1])
        self.token = new_token()
        self.access = Access(self.token, bind, self.port)
        self.httpd.RequestHandlerClass = make_handler(self.session, self.access, max_body=self.options.max_body)
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        """``http://HOST:PORT``, as the page's requests name it."""
        host = self.access.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The page's URL, with the token."""
        return f"{self.origin}/?token={self.token}"

    def start(self) -> RunServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"niwt-serve-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        """Stop serving and let the address go."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> RunServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """Stop as on Ctrl-C when asked to terminate (a service manager, ``kill``): the socket is
    closed and a change being saved finishes or leaves every run as it was."""
    try:
        signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: the caller handles its own signals
        pass


def serve(run: str | Path, options: ServeOptions | None = None) -> int:
    """``niwt serve``: print the URL and serve until interrupted (Ctrl-C, or SIGTERM)."""
    server = RunServer(run, options)
    session = server.session
    run_now = session.run
    where = ("into the run itself (--in-place)" if session.in_place
             else f"as a new run beside it ({run_now.default_out().name})")
    sys.stdout.write(f"niwt serve: {run_now.path} ({len(run_now.row_names)} classes: {len(run_now.fit_classes)} seen, "
                     f"{len(run_now.new_classes)} unseen or taught)\n"
                     f"Open {server.url}\n"
                     f"Changes are saved {where}. Ctrl-C stops the server.\n")
    sys.stdout.flush()
    _stop_on_sigterm()
    if server.options.open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, args=(server.url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stdout.write("niwt serve: stopped\n")
    finally:
        server.close()
    return 0
