"""What the tests of ``niwt serve`` share: a client on the loopback, images good and bad, and
fingerprints of run directories (every file with its checksum) to hold that nothing changed."""

from __future__ import annotations

import http.client
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from niwt.rundir import file_checksum


class Client:
    """HTTP requests to one server on the loopback, with its token unless told otherwise."""

    def __init__(self, server) -> None:
        self.host = server.access.host
        self.port = server.port
        self.token = server.token

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                *, token: str | None | bool = True, timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        sent = dict(headers or {})
        if token is True:
            sent["X-NIWT-Token"] = self.token
        elif isinstance(token, str):
            sent["X-NIWT-Token"] = token
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload: Any = None, **kwargs: Any) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        headers.update(kwargs.pop("headers", {}))
        status, got, data = self.request(method, path, body, headers, **kwargs)
        if got.get("content-type", "").startswith("application/json"):
            return status, json.loads(data)
        return status, data.decode()

    def upload(self, data: bytes, name: str = "image.png", top_k: int = 5) -> tuple[int, Any]:
        status, _, body = self.request("POST", f"/api/images?name={name}&top_k={top_k}", data,
                                       {"Content-Type": "application/octet-stream"})
        return status, json.loads(body)

    def state(self) -> dict[str, Any]:
        status, body = self.json("GET", "/api/state")
        assert status == 200, body
        return body


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    """PNG bytes of an ``[H, W, C]`` uint8 array (or ``[H, W]``)."""
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def shape_png(seed: int = 0, size: int = 96) -> bytes:
    """A striped yellow disc of the shapes world, upscaled to ``size`` pixels."""
    from niwt.data.shapes import render_shape

    image, _ = render_shape("disc", "yellow", "stripes", "large", np.random.default_rng(seed))
    return png(np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST)))


def truncated_png() -> bytes:
    """A PNG cut off in the middle of its pixel data."""
    data = png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return data[: len(data) // 2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real, valid bilevel PNG of ``width`` x ``height`` pixels, all black: 400 million pixels in
    about 50 KB (each row is a filter byte and ``width / 8`` zero bytes, compressed)."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit per pixel, greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` RGB pixels, with a sliver of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def fingerprint(run: Path) -> dict[str, str]:
    """Every file under ``run`` with its checksum, and what lies beside it (a new run would show)."""
    files = {p.relative_to(run).as_posix(): file_checksum(p) for p in sorted(run.rglob("*")) if p.is_file()}
    files["<beside>"] = ",".join(sorted(p.name for p in run.parent.iterdir()))
    return files
