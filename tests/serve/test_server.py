"""``niwt serve`` as a command: it prints the URL with its token, serves, and stops cleanly on
Ctrl-C; it listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from niwt.errors import ConfigError
from niwt.serve.server import RunServer, ServeOptions
from tests._paths import ROOT
from tests.serve._helpers import Client


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_prints_its_url_serves_and_stops_on_ctrl_c(small_run_dir, stop):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "niwt.cli", "serve", str(small_run_dir), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith(f"niwt serve: {small_run_dir} (11 classes: 8 seen, 3 unseen or taught)")
        url = re.fullmatch(r"Open (http://127\.0\.0\.1:(\d+)/\?token=([\w-]{43}))\n", lines[1])
        assert url, lines
        assert lines[2] == "Changes are saved as a new run beside it (run-taught). Ctrl-C stops the server.\n"
        import urllib.error
        import urllib.request

        port, token = int(url.group(2)), url.group(3)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/state", headers={"X-NIWT-Token": token})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60)
            raise AssertionError("the page was served without its token")
        except urllib.error.HTTPError as err:
            assert err.code == 403
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0 and "niwt serve: stopped" in out, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_each_start_makes_a_new_token_and_listens_on_the_loopback(small_run_dir):
    with RunServer(small_run_dir, ServeOptions(port=0, read_dataset=False)) as one, \
            RunServer(small_run_dir, ServeOptions(port=0, read_dataset=False)) as two:
        assert one.token != two.token and one.port != two.port
        assert one.httpd.server_address[0] == "127.0.0.1" and one.url.startswith("http://127.0.0.1:")
        assert Client(one).request("GET", "/api/state", token=two.token)[0] == 403
    try:
        six = RunServer(small_run_dir, ServeOptions(host="::1", port=0, read_dataset=False))
    except ConfigError as err:  # a machine without IPv6 on its loopback
        pytest.skip(str(err))
    with six:
        assert six.origin == f"http://[::1]:{six.port}"
        assert Client(six).request("GET", "/api/state", headers={"Host": f"[::1]:{six.port}"})[0] == 200
