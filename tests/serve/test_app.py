"""Every route of ``niwt serve`` without a browser: the token on every route, the Host and Origin
checks, the body cap, each bad input answered with a message that says what is wrong, the server
still up after it and the run on disk as it was; predictions, explanations and the changes."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from niwt.cli import main
from niwt.rundir import verify_run
from niwt.runs import load_run
from niwt.serve.page import PAGE_STYLE, SCRIPT, page_html
from niwt.serve.server import RunServer, ServeOptions
from tests._configs import SMALL_RUN
from tests.serve._helpers import (
    Client,
    fingerprint,
    huge_png,
    png,
    png_declaring,
    shape_png,
    truncated_png,
)


@pytest.fixture(scope="module")
def server(small_run_dir):
    with RunServer(small_run_dir, ServeOptions(port=0)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server)


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_run")
    (root / "c.toml").write_text(SMALL_RUN + '[knowledge]\nsource = "text"\n')
    assert main(["run", str(root / "c.toml"), "--out", str(root / "run"), "--quiet"]) == 0
    with RunServer(root / "run", ServeOptions(port=0)) as running:
        yield running


ROUTES = [("GET", "/"), ("GET", "/static/serve.js"), ("GET", "/static/serve.css"), ("GET", "/report"),
          ("GET", "/api/state"), ("POST", "/api/images"), ("POST", "/api/rank"), ("POST", "/api/explain"),
          ("POST", "/api/teach"), ("POST", "/api/forget"), ("GET", "/no/such/page")]


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("token", [None, "wrong", ""], ids=["no-token", "wrong-token", "empty-token"])
def test_every_route_refuses_a_request_without_the_token(client, small_run_dir, method, path, token):
    before = fingerprint(small_run_dir)
    body = json.dumps({"name": "x", "attributes": {"shape:disc": 1}}).encode() if method == "POST" else None
    status, headers, data = client.request(method, path, body, {"Content-Type": "application/json"},
                                           token=token if token is not None else False)
    assert status == 403
    assert headers["content-type"].startswith("text/plain") and b"needs its token" in data and len(data) < 200
    status, _, _ = client.request(method, path + "?token=nope", body, {"Content-Type": "application/json"},
                                  token=False)
    assert status == 403
    assert fingerprint(small_run_dir) == before
    assert client.state()["run"]["path"] == str(small_run_dir)  # still up


def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_address_bar(client, server):
    status, headers, _ = client.request("GET", f"/?token={server.token}", token=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"niwt-token-{server.port}=" in cookie
    status, headers, page = client.request("GET", "/", headers={"Cookie": cookie.split(";")[0]}, token=False)
    assert status == 200 and b"<label for=\"class-name\">Class name</label>" in page
    assert "script-src 'self'" in headers["content-security-policy"]
    status, _, _ = client.request("GET", "/static/serve.js", headers={"Cookie": f"niwt-token-{server.port}=bad"},
                                  token=False)
    assert status == 403


@pytest.mark.parametrize("host", ["evil.example:{port}", "localhost:1", "", "127.0.0.1"])
def test_a_host_that_is_not_the_server_is_refused(client, server, host):
    status, _, data = client.request("GET", "/api/state", headers={"Host": host.format(port=server.port)})
    assert status == 403 and b"Host" in data


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
def test_a_post_from_another_page_is_refused(client, small_run_dir, headers):
    before = fingerprint(small_run_dir)
    status, body = client.json("POST", "/api/teach", {"name": "x", "attributes": {"shape:disc": 1}}, headers=headers)
    assert status == 403 and body == "403 Forbidden: a request from another page\n"
    assert fingerprint(small_run_dir) == before


def test_the_page_loads_nothing_from_elsewhere():
    for text in (page_html("t" * 43, "niwt serve: run"), SCRIPT, PAGE_STYLE):
        assert "http:" not in text and "https:" not in text and "://" not in text and "@import" not in text
    assert "innerHTML" not in SCRIPT and "eval(" not in SCRIPT


def test_every_control_of_the_page_has_a_visible_label():
    import re

    page = page_html("t" * 43, "niwt serve: run")
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page)
    assert ids == ["files", "top-k", "class-name", "forget-class"]
    for control in ids:
        assert f'<label for="{control}">' in page
    assert 'el("label", {for: id, text: a.name})' in SCRIPT and 'el("label", {for: "description"' in SCRIPT


def test_an_image_gets_its_classes_map_words_and_neurons(client, server):
    status, result = client.upload(shape_png(), "disc.png", top_k=4)
    assert status == 200, result
    run = server.session.run
    assert [t["class"] for t in result["top"]] == list(run.predict(server.session.image(result["id"]).tensor[None],
                                                                   top_k=4)[0].classes)
    assert {t["kind"] for t in result["top"]} <= {"seen", "unseen", "taught"}
    probabilities = [t["probability"] for t in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9
    explained = result["explained"]
    assert explained["class"] == result["top"][0]["class"]
    assert explained["overlay"].startswith("data:image/png;base64,") and result["image"].startswith("data:image/png")
    assert len(explained["words"]) == 5 and all(w["name"] in run.knowledge_names for w in explained["words"])
    assert 1 <= len(explained["neurons"]) <= 5
    shares = [n["share"] for n in explained["neurons"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    assert (result["width"], result["height"], result["format"]) == (96, 96, "PNG") and result["seconds"] > 0
    other = result["top"][-1]["class"]
    status, answer = client.json("POST", "/api/explain", {"id": result["id"], "class": other})
    assert status == 200 and answer["explained"]["class"] == other
    assert answer["explained"]["overlay"] != explained["overlay"]


def test_grey_rgba_and_turned_jpeg_images_are_read_as_rgb_and_upright(client):
    grey = png(np.arange(40 * 30, dtype=np.uint8).reshape(40, 30))
    status, result = client.upload(grey, "grey.png")
    assert status == 200 and result["mode"] == "L" and "converted to RGB" in result["notes"][0]
    rgba = png(np.full((20, 20, 4), 200, np.uint8))
    status, result = client.upload(rgba, "clear.png")
    assert status == 200 and "transparent pixels over white" in result["notes"][0]
    import io

    from PIL import Image

    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: turn it 90 degrees
    Image.new("RGB", (60, 40), "red").save(buf, format="JPEG", exif=exif)
    status, result = client.upload(buf.getvalue(), "turned.jpg")
    assert status == 200 and result["format"] == "JPEG" and "turned upright by its EXIF orientation (6)" in result["notes"]


BAD_UPLOADS = {
    "not an image": (b"just some text, not a picture\n", 400, "is not a PNG or JPEG image"),
    "empty": (b"", 400, "is empty (0 bytes)"),
    "truncated PNG": (truncated_png(), 400, "damaged or truncated PNG"),
    "20000 x 20000 PNG": (huge_png(), 400, "is 20000 x 20000 pixels (400 million); the server decodes images of at "
                                           "most 40 million pixels"),
    "8000 x 6000 PNG header": (png_declaring(8000, 6000), 400, "8000 x 6000 pixels (48 million)"),
    "GIF": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", 400, "is not a PNG or JPEG image"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_is_named_and_changes_nothing(client, small_run_dir, case):
    data, status_wanted, message = BAD_UPLOADS[case]
    before = fingerprint(small_run_dir)
    images = len(client.state()["images"])
    status, body = client.upload(data, "bad.png")
    assert status == status_wanted and message in body["error"] and "'bad.png'" in body["error"]
    assert fingerprint(small_run_dir) == before
    state = client.state()  # still up, and nothing kept
    assert len(state["images"]) == images


def test_a_body_over_the_cap_is_refused_unread(client, small_run_dir):
    before = fingerprint(small_run_dir)
    body = b"\x00" * (50 * 1024 * 1024)
    status, headers, data = client.request("POST", "/api/images?name=big.png", body,
                                           {"Content-Type": "application/octet-stream"})
    assert status == 413 and headers["connection"] == "close"
    assert "the request body is 50.0 MiB; the server takes at most 20.0 MiB" in json.loads(data)["error"]
    # only the header is needed to refuse it: a client that never sends the body is answered too
    with socket.create_connection((client.host, client.port), timeout=30) as sock:
        sock.sendall(f"POST /api/images HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nX-NIWT-Token: {client.token}"
                     f"\r\nContent-Length: {10 ** 12}\r\n\r\n".encode())
        assert sock.recv(64).startswith(b"HTTP/1.1 413")
    assert fingerprint(small_run_dir) == before and client.state()


def _raw(client: Client, headers: dict[str, str], body: bytes = b"") -> int:
    conn = http.client.HTTPConnection(client.host, client.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/teach")
        for key, value in {"X-NIWT-Token": client.token, "Content-Type": "application/json", **headers}.items():
            conn.putheader(key, value)
        conn.endheaders()
        conn.send(body)
        return conn.getresponse().status
    finally:
        conn.close()


def test_bodies_without_a_length_or_not_json_are_refused(client):
    assert _raw(client, {"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n") == 411
    assert _raw(client, {}) == 411  # no Content-Length
    assert _raw(client, {"Content-Length": "-3"}) == 400
    status, _, data = client.request("POST", "/api/teach", b'{"name": "x"}', {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in json.loads(data)["error"]
    status, _, data = client.request("POST", "/api/teach", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in json.loads(data)["error"]
    status, _, data = client.request("POST", "/api/teach", b"x" * 70_000, {"Content-Type": "application/json"})
    assert status == 413 and "the request body is 68 KiB; the server takes at most 64 KiB" in json.loads(data)["error"]
    assert client.state()


def test_unknown_routes_methods_ids_and_values_are_named(client):
    assert client.request("GET", "/api/nothing")[0] == 404
    status, _, data = client.request("DELETE", "/api/teach")
    assert status == 405 and b"POST only" in data
    assert client.request("GET", "/api/teach")[0] == 405
    status, body = client.json("POST", "/api/explain", {"id": "feedfeedfeedfeed", "class": "x"})
    assert status == 404 and "not on the server" in body["error"] and "send it again" in body["error"]
    ok, result = client.upload(shape_png(), "d.png")
    status, body = client.json("POST", "/api/explain", {"id": result["id"], "class": "no-such-class"})
    assert status == 400 and "unknown class 'no-such-class'" in body["error"]
    status, body = client.json("POST", "/api/rank", {"ids": "abc"})
    assert status == 400 and "`ids` must be a list" in body["error"]
    status, body = client.json("POST", "/api/rank", {"ids": [result["id"], "gone"], "top_k": 2})
    assert status == 200 and len(body["images"][0]["top"]) == 2 and "not on the server" in body["images"][1]["error"]
    for top_k in (0, 21, "x", True):
        status, body = client.json("POST", "/api/rank", {"ids": [], "top_k": top_k})
        assert status == 400 and "`top_k` must be a whole number from 1 to 20" in body["error"]


BAD_LESSONS = [
    ({"name": "a/b", "attributes": {"shape:disc": 1}}, "holds /; class names may not hold path separators"),
    ({"name": "..", "attributes": {"shape:disc": 1}}, "'..' cannot name a class"),
    ({"name": "../../etc", "attributes": {"shape:disc": 1}}, "holds /"),
    ({"name": "", "attributes": {"shape:disc": 1}}, "a class needs a name"),
    ({"name": "x" * 101, "attributes": {"shape:disc": 1}}, "has 101 characters; give one of at most 100"),
    ({"name": "x", "attributes": {"shape:disk": 1}}, "unknown attribute 'shape:disk'; close names: shape:disc"),
    ({"name": "x", "attributes": {"shape:disc": "big"}}, "attribute 'shape:disc': its value must be a number"),
    ({"name": "x", "attributes": {"shape:disc": -5}}, "is negative"),
    ({"name": "x", "attributes": {}}, "every attribute of the class is 0"),
    ({"name": "x", "description": "a red disc"}, "this run's classes were described by attributes"),
    ({"name": "x"}, "give its description or its attribute values"),
    ({"name": 3, "attributes": {"shape:disc": 1}}, "`name` must be the new class's name (a string), got int 3"),
    ({"name": "x", "attributes": {"shape:disc": 1}, "path": "/tmp"}, "unknown field(s) ['path']"),
]


@pytest.mark.parametrize("payload, message", BAD_LESSONS, ids=[str(i) for i in range(len(BAD_LESSONS))])
def test_a_bad_class_to_teach_is_named_and_changes_nothing(client, server, small_run_dir, payload, message):
    before = fingerprint(small_run_dir)
    status, body = client.json("POST", "/api/teach", payload)
    assert status == 400 and message in body["error"], body
    assert fingerprint(small_run_dir) == before and server.session.saved_to is None
    assert client.state()["counts"]["taught"] == 0


def test_a_name_that_is_already_a_class_is_refused(client, server, small_run_dir):
    run = server.session.run
    before = fingerprint(small_run_dir)
    for name, what in ((run.row_names[0], "is a seen class of this run"), (run.row_names[-1], "already a class"),
                       (run.row_names[-1].upper(), "only in capitals")):
        status, body = client.json("POST", "/api/teach", {"name": name, "attributes": {"shape:disc": 1}})
        assert status == 400 and what in body["error"], body
    status, body = client.json("POST", "/api/forget", {"name": run.row_names[0]})
    assert status == 400 and "is a seen class of this run" in body["error"]
    status, body = client.json("POST", "/api/forget", {"name": "no-such"})
    assert status == 400 and "unknown class 'no-such'" in body["error"]
    assert fingerprint(small_run_dir) == before


def test_an_empty_description_is_refused_on_a_text_run(text_server):
    client, run_dir = Client(text_server), text_server.session.source
    before = fingerprint(run_dir)
    for description, message in (("", "`description` is empty: describe the class in words"),
                                 ("   ", "`description` is empty"),
                                 ("zorblax quuxly", "'zorblax'"),
                                 ("x" * 5001, "describe the class in at most 5000"),
                                 (["a", "b"], "`description` must be a string")):
        status, body = client.json("POST", "/api/teach", {"name": "new-one", "description": description})
        assert status == 400 and message in body["error"], body
    assert fingerprint(run_dir) == before
    state = client.state()
    assert state["knowledge"] == {"source": "text"} and all(c["given"] for c in state["classes"])


def test_teaching_saves_a_new_run_beside_the_source_and_the_images_are_ranked_again(tmp_path, small_run_dir):
    import shutil

    source = Path(shutil.copytree(small_run_dir, tmp_path / "run"))
    before = fingerprint(source)
    with RunServer(source, ServeOptions(port=0)) as server:
        client = Client(server)
        _, first = client.upload(shape_png(), "disc.png", top_k=20)
        status, change = client.json("POST", "/api/teach", {"name": "striped-yellow-disc", "attributes": {
            "shape:disc": 0.9, "colour:yellow": 0.02, "pattern:stripes": 0.9, "size:large": 0.9}})
        assert status == 200, change
        assert change["saved_to"] == str(tmp_path / "run-taught") and change["steps"] >= 1
        status, ranked = client.json("POST", "/api/rank", {"ids": [first["id"]], "top_k": 20})
        top = ranked["images"][0]["top"]
        assert {"class": "striped-yellow-disc", "kind": "taught"}.items() <= next(
            t for t in top if t["class"] == "striped-yellow-disc").items()
        assert len(top) == len(first["top"]) + 1
        state = client.state()
        assert state["saved_to"] == str(tmp_path / "run-taught") and state["counts"]["taught"] == 1
        given = next(c for c in state["classes"] if c["name"] == "striped-yellow-disc")["given"]
        assert given == "shape:disc=0.9, colour:yellow=0.02, pattern:stripes=0.9, size:large=0.9"
        status, change = client.json("POST", "/api/forget", {"name": "striped-yellow-disc"})
        assert status == 200 and change["saved_to"] == str(tmp_path / "run-taught")  # the session's run, replaced
    assert fingerprint(source)["<beside>"] == "run,run-taught"
    del before["<beside>"]
    assert {k: v for k, v in fingerprint(source).items() if k != "<beside>"} == before  # the source as it was
    saved = load_run(tmp_path / "run-taught")
    verify_run(saved.path)
    assert "striped-yellow-disc" not in saved.row_names and [e.action for e in saved.events] == ["teach", "forget"]


def test_in_place_changes_the_source_and_a_second_server_cannot_lose_them(tmp_path, small_run_dir):
    import shutil

    source = Path(shutil.copytree(small_run_dir, tmp_path / "run"))
    options = ServeOptions(port=0, in_place=True, read_dataset=False)
    with RunServer(source, options) as first, RunServer(source, options) as second:
        a, b = Client(first), Client(second)
        status, change = a.json("POST", "/api/teach", {"name": "from-a", "attributes": {"shape:disc": 0.5}})
        assert status == 200 and change["saved_to"] == str(source)
        status, body = b.json("POST", "/api/teach", {"name": "from-b", "attributes": {"shape:star": 0.5}})
        assert status == 409 and "changed since it was loaded" in body["error"]
        assert "from-a" in [c["name"] for c in b.state()["classes"]]  # b read the run again
        status, change = b.json("POST", "/api/teach", {"name": "from-b", "attributes": {"shape:star": 0.5}})
        assert status == 200
        assert main(["teach", str(source), "--name", "from-cli", "--attributes", "shape:cross=0.5", "--in-place",
                     "--quiet"]) == 0  # niwt teach meanwhile
        status, body = a.json("POST", "/api/forget", {"name": "from-a"})
        assert status == 409 and "changed since it was loaded" in body["error"]
        status, change = a.json("POST", "/api/forget", {"name": "from-a"})
        assert status == 200
    run = load_run(source)
    verify_run(source)
    assert run.taught_classes == ("from-b", "from-cli")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_new_run_whose_name_another_command_took_meanwhile_goes_beside_it(tmp_path, small_run_dir, monkeypatch):
    import shutil

    from niwt.runs import LoadedRun

    source = Path(shutil.copytree(small_run_dir, tmp_path / "run"))
    with RunServer(source, ServeOptions(port=0, read_dataset=False)) as server:
        real, raced = LoadedRun.save, []

        def racing(self, out=None, **kwargs):  # niwt teach writes RUN-taught just before the server does
            if not raced and out is not None and Path(out).name == "run-taught":
                raced.append(out)
                assert main(["teach", str(source), "--name", "from-cli", "--attributes", "shape:cross=0.5",
                             "--quiet"]) == 0
            return real(self, out, **kwargs)

        monkeypatch.setattr(LoadedRun, "save", racing)
        status, change = Client(server).json("POST", "/api/teach", {"name": "from-page",
                                                                    "attributes": {"shape:disc": 0.5}})
        assert status == 200 and change["saved_to"] == str(tmp_path / "run-taught-2")
    assert load_run(tmp_path / "run-taught").taught_classes == ("from-cli",)
    assert load_run(tmp_path / "run-taught-2").taught_classes == ("from-page",)


def test_a_port_in_use_is_named(server, small_run_dir):
    from niwt.errors import ConfigError

    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1 port {server.port}"):
        RunServer(small_run_dir, ServeOptions(port=server.port, read_dataset=False))
    with pytest.raises(ConfigError, match="--port must be a port number"):
        ServeOptions(port=70000)
