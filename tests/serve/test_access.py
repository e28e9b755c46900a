"""Who may ask a server: the token (from its header, the URL or the cookie, compared in constant
time), a Host that names the server, and requests from its own page only."""

from __future__ import annotations

import pytest

from niwt.serve.access import HEADER, Access, is_loopback, new_token

ACCESS = Access("s3cret-token", "127.0.0.1", 8123)


def test_tokens_are_new_at_each_start_and_long():
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) == 43 for t in tokens)


@pytest.mark.parametrize("headers, query, given", [
    ({HEADER: "a"}, "token=b", "a"),
    ({}, "token=b&x=1", "b"),
    ({"Cookie": "other=1; niwt-token-8123=c"}, "", "c"),
    ({"Cookie": "niwt-token-9999=c"}, "", None),  # another server's cookie
    ({"Cookie": "\x00;;=="}, "", None),
    ({}, "", None),
])
def test_the_token_is_read_from_the_header_the_url_or_the_cookie(headers, query, given):
    assert ACCESS.given_token(headers, query) == given


def test_only_the_token_itself_passes():
    assert ACCESS.token_ok("s3cret-token")
    for wrong in (None, "", "s3cret-toke", "s3cret-token ", "S3CRET-TOKEN", "é"):
        assert not ACCESS.token_ok(wrong)


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8123", True), ("localhost:8123", True), ("LOCALHOST:8123", True), ("127.0.0.2:8123", True),
    ("[::1]:8123", True), ("127.0.0.1", False), ("127.0.0.1:8124", False), ("evil.example:8123", False),
    ("127.0.0.1.nip.io:8123", False), ("", False), (None, False), ("127.0.0.1:x", False),
])
def test_the_host_must_name_the_server(host, ok):
    assert ACCESS.host_allowed(host) is ok


def test_a_host_given_by_name_is_accepted_by_that_name():
    assert Access("t", "myhost.lan", 80).host_allowed("myhost.lan:80")
    assert not Access("t", "myhost.lan", 80).host_allowed("other.lan:80")


@pytest.mark.parametrize("headers, ok", [
    ({}, True),
    ({"Host": "127.0.0.1:8123", "Origin": "http://127.0.0.1:8123", "Sec-Fetch-Site": "same-origin"}, True),
    ({"Host": "127.0.0.1:8123", "Origin": "http://localhost:8123"}, False),
    ({"Host": "127.0.0.1:8123", "Origin": "null"}, False),
    ({"Host": "127.0.0.1:8123", "Sec-Fetch-Site": "cross-site"}, False),
    ({"Host": "127.0.0.1:8123", "Sec-Fetch-Site": "none"}, True),
])
def test_only_the_servers_own_page_may_post(headers, ok):
    assert ACCESS.origin_allowed(headers) is ok


def test_the_cookie_is_http_only_strict_and_per_port():
    assert ACCESS.set_cookie() == "niwt-token-8123=s3cret-token; HttpOnly; SameSite=Strict; Path=/"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_browser_tests_skip_with_the_reason_and_fail_when_a_browser_is_required(monkeypatch):
    from tests.serve import _browser

    monkeypatch.setattr(_browser, "CHROMIUM_PATHS", ("/nonexistent/chromium",))
    monkeypatch.delenv(_browser.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian's Chromium is not installed"):
        _browser.require_browser()
    monkeypatch.setenv(_browser.REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match="NIWT_REQUIRE_BROWSER=1 but Debian's Chromium"):
        _browser.require_browser()
