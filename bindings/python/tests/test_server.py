"""Server options that need no viewer: TLS from cert/key files, URLs, stats, TURN credentials,
pushes from several threads at once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from conftest import http, loopback_server


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_cert_and_key_serve_https_and_urls_say_so(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    with loopback_server(cert=cert, key=str(key)) as server:
        server.stream("cam")
        url = server.url("cam")
        assert url == f"https://127.0.0.1:{server.port}/cam/embed.html"
        assert server.ws_url("cam") == f"wss://127.0.0.1:{server.port}/cam/webrtc"
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False  # the certificate names 127.0.0.1 as CN only
        with urllib.request.urlopen(url, context=context, timeout=10) as resp:
            assert resp.status == 200 and b"<video" in resp.read()


def test_urls_stats_and_stream_listing():
    with loopback_server() as server:
        assert server.streams() == []
        a, b = server.stream("a"), server.stream("b", audio=False)
        assert server.streams() == ["a", "b"] and server.stream("a").name == "a"
        port = server.port
        assert server.url("a") == f"http://127.0.0.1:{port}/a/embed.html"
        assert server.whep_url("a") == f"http://127.0.0.1:{port}/a/whep"
        assert server.ws_url("a") == f"ws://127.0.0.1:{port}/a/webrtc"
        assert server.udp_port > 0 and server.udp_port != port
        # ICE-TCP, on a port of its own here (the loopback server picks free ports).
        assert server.tcp_port > 0 and server.tcp_port != port
        status, _, body = http("GET", f"http://127.0.0.1:{port}/a/media_info.json")
        assert status == 200 and b"h264" in body
        a.push_frame(np.zeros((240, 320, 3), np.uint8))
        a.push_opus(b"\xf8\xff\xfe")
        stats = server.stats()
        assert (stats.streams, stats.viewers) == (2, 0)
        by_name = {s.name: s for s in server.stream_stats()}
        assert (by_name["a"].video_frames, by_name["a"].audio_packets) == (1, 1)
        assert by_name["b"].video_frames == 0 and b.viewers == 0
        assert "running" in repr(server)
    assert "closed" in repr(server)


def test_pushes_from_several_threads_at_once_all_succeed():
    with loopback_server() as server:
        streams = [server.stream("one"), server.stream("two")]
        errors: list = []

        def push(stream, seed):
            frame = np.random.default_rng(seed).integers(0, 255, (240, 320, 3), np.uint8)
            try:
                for i in range(50):
                    stream.push_frame(frame)
                    stream.push_opus(b"\xf8\xff\xfe")
            except Exception as e:  # noqa: BLE001 - asserted below
                errors.append(e)

        threads = [threading.Thread(target=push, args=(streams[i % 2], i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [s.stats().video_frames for s in streams] == [100, 100]


def test_candidate_policy_udp_only_turns_ice_tcp_off():
    with loopback_server(candidates="udp") as server:
        assert server.tcp_port == 0


async def client_offer() -> str:
    """A recvonly video offer from aiortc, as a WHEP player POSTs it."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def test_turn_secret_gives_each_whep_viewer_rest_credentials_of_the_shared_secret():
    secret = "north-shore"
    turn = {"urls": ["turn:127.0.0.1:3478?transport=udp"], "secret": secret, "ttl": 600}

    sdp = asyncio.run(client_offer())
    with loopback_server(turn_secret=turn) as server:
        server.stream("cam")
        req = urllib.request.Request(
            server.whep_url("cam"),
            data=sdp.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201
            links = resp.headers.get_all("Link")
    assert len(links) == 1, links
    link = links[0]
    assert link.startswith('<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"'), link
    username = re.search(r'username="([^"]+)"', link).group(1)
    credential = re.search(r'credential="([^"]+)"', link).group(1)
    expiry, _name = username.split(":")
    assert abs(int(expiry) - (time.time() + 600)) < 60, username
    # What coturn computes from its static-auth-secret to check the password.
    want = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest())
    assert credential == want.decode()


def test_authorize_refuses_one_viewer_and_admits_another():
    asked = []

    def authorize(req: rtcast.AuthRequest) -> bool:
        asked.append((req.stream, req.token, req.protocol, req.remote))
        return req.token == "good"

    sdp = asyncio.run(client_offer())
    with loopback_server(authorize=authorize) as server:
        server.stream("cam")

        def post(token: str) -> int:
            req = urllib.request.Request(
                server.whep_url("cam"),
                data=sdp.encode(),
                method="POST",
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as e:
                return e.code

        assert post("bad") == 403
        assert post("good") == 201
    assert [a[:3] for a in asked] == [("cam", "bad", "whep"), ("cam", "good", "whep")]
    assert asked[0][3].startswith("127.0.0.1:"), asked
