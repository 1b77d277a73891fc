"""Shared helpers: a loopback rtcast server, an aiortc WHEP viewer, a pusher thread, colours."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Optional

import aioice.ice
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

import rtcast

# aioice leaves loopback out when it gathers host candidates; the server announces 127.0.0.1
# only (tests run on loopback), so the viewer must offer 127.0.0.1 too. No STUN server is used.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def loopback_server(**kwargs) -> rtcast.Server:
    """A server on 127.0.0.1 with free ports, as the core tests use (ServerConfig::loopback)."""
    return rtcast.Server(port=0, udp_port=0, bind="127.0.0.1", **kwargs)


@pytest.fixture
def server():
    with loopback_server() as s:
        yield s


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def http(method: str, url: str, body: Optional[bytes] = None, content_type: Optional[str] = None):
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Viewer:
    """An independent WebRTC client (aiortc) that plays a stream over WHEP."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()  # no ICE servers: host candidates only
        self.track = None
        self.location: Optional[str] = None
        self.whep_url: Optional[str] = None

    async def connect(self, whep_url: str, audio: bool = False, timeout: float = 15) -> None:
        self.whep_url = whep_url
        loop = asyncio.get_running_loop()
        got_track: asyncio.Future = loop.create_future()

        @self.pc.on("track")
        def on_track(track):
            if track.kind == "video" and not got_track.done():
                got_track.set_result(track)

        self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, headers, body = await asyncio.to_thread(
            http, "POST", whep_url, self.pc.localDescription.sdp.encode(), "application/sdp"
        )
        assert status == 201, f"WHEP POST answered {status}: {body!r}"
        self.location = headers.get("Location") or headers.get("location")
        await self.pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
        self.track = await asyncio.wait_for(got_track, timeout)

    async def frame(self, timeout: float = 10):
        return await asyncio.wait_for(self.track.recv(), timeout)

    async def wait_for_colour(self, rgb, size=None, tolerance=24, timeout: float = 15):
        """Reads decoded frames until one is uniformly `rgb` (within tolerance) and of `size`
        (width, height); returns it as an (H, W, 3) array. Fails with the last frame seen."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            frame = await self.frame(timeout=max(0.1, deadline - time.monotonic()))
            arr = frame.to_ndarray(format="rgb24")
            last = (frame.width, frame.height, arr.reshape(-1, 3).mean(axis=0).round())
            if size is not None and (frame.width, frame.height) != tuple(size):
                continue
            if colour_matches(arr, rgb, tolerance):
                return arr
        raise AssertionError(f"no {size} frame of colour {rgb} arrived; last: {last}")

    async def close(self) -> None:
        await self.pc.close()
        if self.location and self.whep_url:
            base = self.whep_url.split("/", 3)
            url = f"{base[0]}//{base[2]}{self.location}" if self.location.startswith("/") else self.location
            await asyncio.to_thread(http, "DELETE", url)


def colour_matches(arr: np.ndarray, rgb, tolerance: int) -> bool:
    """Every pixel away from the borders is within `tolerance` of `rgb` on each channel."""
    h, w, _ = arr.shape
    inner = arr[h // 8 : h - h // 8, w // 8 : w - w // 8].reshape(-1, 3).astype(int)
    return bool(np.all(np.abs(inner - np.array(rgb)) <= tolerance))


def yuv601(rgb):
    """BT.601 limited-range Y, U, V of an RGB colour (what browsers assume for H.264)."""
    r, g, b = (float(c) for c in rgb)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


class Pusher:
    """Pushes the current frame at 30 fps on its own thread, as a capture loop would."""

    def __init__(self, stream: rtcast.Stream) -> None:
        self.stream = stream
        self.frame = None
        self.format = None
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-pusher")

    def set(self, frame, format=None) -> None:
        self.frame, self.format = frame, format

    def _run(self) -> None:
        while not self._stop.wait(1 / 30):
            if self.frame is None:
                continue
            try:
                self.stream.push_frame(self.frame, format=self.format)
            except Exception as e:  # noqa: BLE001 - reported by stop()
                self.errors.append(e)

    def __enter__(self) -> "Pusher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        assert not self.errors, self.errors
