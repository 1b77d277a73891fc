"""Every bad input raises its documented exception, with a message saying what was wrong, and
the server keeps serving a viewer."""

from __future__ import annotations

import asyncio
import errno
import socket

import numpy as np
import pytest
from conftest import Pusher, Viewer, loopback_server

import rtcast

RGB = np.zeros((240, 320, 3), np.uint8)


def i420(w=320, h=240):
    return np.zeros((h, w), np.uint8), np.zeros((h // 2, w // 2), np.uint8), np.zeros((h // 2, w // 2), np.uint8)


# (id, call(server, stream), exception, words the message must contain)
BAD_INPUTS = [
    ("float dtype", lambda s, st: st.push_frame(RGB.astype(np.float32)), rtcast.InvalidFrameError, "dtype uint8, got float32"),
    ("5 channels", lambda s, st: st.push_frame(np.zeros((240, 320, 5), np.uint8)), rtcast.InvalidFrameError, "5 channels"),
    ("1-D array", lambda s, st: st.push_frame(np.zeros(1000, np.uint8)), rtcast.InvalidFrameError, "2 or 3 dimensions"),
    ("4-D array", lambda s, st: st.push_frame(np.zeros((2, 240, 320, 3), np.uint8)), rtcast.InvalidFrameError, "2 or 3 dimensions"),
    ("odd size", lambda s, st: st.push_frame(np.zeros((241, 320, 3), np.uint8)), rtcast.InvalidFrameError, "odd dimension"),
    ("empty frame", lambda s, st: st.push_frame(np.zeros((0, 320, 3), np.uint8)), rtcast.InvalidFrameError, "0"),
    ("too large", lambda s, st: st.push_frame(np.zeros((4, 8192, 4), np.uint8)), rtcast.InvalidFrameError, "8192"),
    ("bgr24 on 4 channels", lambda s, st: st.push_frame(np.zeros((240, 320, 4), np.uint8), format="bgr24"), rtcast.InvalidFrameError, "(240, 320, 4)"),
    ("unknown format", lambda s, st: st.push_frame(RGB, format="yuyv"), rtcast.InvalidFrameError, "unknown pixel format 'yuyv'"),
    ("bgra on 3 channels", lambda s, st: st.push_frame(RGB, format="bgra"), rtcast.InvalidFrameError, "(240, 320, 3)"),
    ("2-D without format", lambda s, st: st.push_frame(np.zeros((360, 320), np.uint8)), rtcast.InvalidFrameError, "format='i420'"),
    ("packed rows not 3/2", lambda s, st: st.push_frame(np.zeros((361, 320), np.uint8), format="i420"), rtcast.InvalidFrameError, "multiple of 3"),
    ("i420 wrong chroma", lambda s, st: st.push_frame((i420()[0], np.zeros((240, 80), np.uint8), i420()[2])), rtcast.InvalidFrameError, "must have shape (120, 160)"),
    ("nv12 as i420", lambda s, st: st.push_frame(i420()[:2], format="i420"), rtcast.InvalidFrameError, "(y, u, v)"),
    ("not an array", lambda s, st: st.push_frame("pixels"), TypeError, "NumPy uint8 array"),
    ("negative pts", lambda s, st: st.push_frame(RGB, pts=-1), ValueError, "pts"),
    ("pts of wrong type", lambda s, st: st.push_frame(RGB, pts="now"), TypeError, "pts"),
    ("h264 not annex b", lambda s, st: st.push_h264(b"\x01\x02\x03\x04garbage"), rtcast.InvalidDataError, "not H.264 Annex B"),
    ("h264 empty", lambda s, st: st.push_h264(b""), rtcast.InvalidDataError, ""),
    ("h264 forbidden bit", lambda s, st: st.push_h264(b"\x00\x00\x00\x01\xe5\x00"), rtcast.InvalidDataError, "forbidden_zero_bit"),
    ("h264 str", lambda s, st: st.push_h264("00 00 01"), TypeError, "bytes-like"),
    ("vp8 into h264 stream", lambda s, st: st.push_vp8(b"\x10\x02\x00\x9d\x01\x2a"), rtcast.UnsupportedCodecError, "vp8"),
    ("vp8 garbage", lambda s, st: s.stream("v8", video="vp8").push_vp8(b"\x00"), rtcast.InvalidDataError, ""),
    ("rendition v2 of one", lambda s, st: st.push_h264(b"\x00\x00\x00\x01\x65\x88", rendition="v2"), rtcast.InvalidDataError, "its renditions are v1"),
    ("plain push into a ladder", lambda s, st: s.stream("l", renditions=[(640, 360, 800_000), (320, 180, 300_000)]).push_h264(b"\x00\x00\x00\x01\x65\x88"), rtcast.InvalidDataError, "2 renditions"),
    ("ladder bitrates up", lambda s, st: s.stream("up", renditions=[(320, 180, 300_000), (640, 360, 800_000)]), rtcast.ConfigError, "lower bitrate"),
    ("opus empty", lambda s, st: st.push_opus(b""), rtcast.InvalidDataError, "Opus packet"),
    ("opus too big", lambda s, st: st.push_opus(bytes(5000)), rtcast.InvalidDataError, "got 5000"),
    ("opus without audio", lambda s, st: s.stream("mute", audio=False).push_opus(b"\xf8\xff\xfe"), rtcast.UnsupportedCodecError, "without audio"),
    ("bad stream name", lambda s, st: s.stream("no spaces"), rtcast.ConfigError, "not valid"),
    ("unknown codec", lambda s, st: s.stream("x", video="av1"), rtcast.UnsupportedCodecError, "'av1'"),
    ("bad keyframe interval", lambda s, st: s.stream("k", keyframe_interval=-1), rtcast.ConfigError, "keyframe_interval"),
    ("on_event not callable", lambda s, st: s.on_event(42), TypeError, "callable"),
]


@pytest.mark.parametrize("call,exc,words", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_its_exception(server, call, exc, words):
    stream = server.stream("cam")
    with pytest.raises(exc) as info:
        call(server, stream)
    assert isinstance(info.value, (rtcast.RtcastError, TypeError, ValueError))
    assert words in str(info.value)
    stream.push_frame(RGB)  # the stream still takes good input


def test_input_errors_are_value_errors_and_all_derive_from_rtcast_error():
    for cls in (rtcast.InvalidFrameError, rtcast.InvalidDataError, rtcast.UnsupportedCodecError, rtcast.ConfigError):
        assert issubclass(cls, ValueError) and issubclass(cls, rtcast.RtcastError)
    assert issubclass(rtcast.BindError, OSError)
    for cls in (rtcast.TlsError, rtcast.EncoderError, rtcast.StreamClosedError, rtcast.ServerStoppedError, rtcast.LimitError):
        assert issubclass(cls, rtcast.RtcastError)


def test_port_in_use_raises_bind_error_with_errno():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(rtcast.BindError) as info:
            rtcast.Server(port=port, udp_port=0, bind="127.0.0.1")
    assert info.value.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{port}" in str(info.value)


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        ({"bind": "localhost:80"}, rtcast.ConfigError, "not an IP address"),
        ({"public_ips": ["1.2.3"]}, rtcast.ConfigError, "public_ips"),
        ({"max_viewers": 0}, rtcast.ConfigError, "at least 1"),
        ({"max_connecting_per_address": 0}, rtcast.ConfigError, "max_connecting_per_address"),
        ({"max_connecting": 0}, rtcast.ConfigError, "max_connecting)"),
        ({"max_message_bytes": 10}, rtcast.ConfigError, "max_ws_message_bytes"),
        ({"connect_timeout": 0}, rtcast.ConfigError, "timeouts"),
        ({"cert": "/nonexistent/cert.pem"}, rtcast.ConfigError, "cert and key"),
        ({"cert": "/nonexistent/cert.pem", "key": "/nonexistent/key.pem"}, rtcast.TlsError, "/nonexistent/cert.pem"),
        ({"ice_servers": [{"username": "u"}]}, rtcast.ConfigError, "urls"),
        ({"ice_servers": [42]}, TypeError, "ICE server"),
        ({"candidates": "udp,quic"}, rtcast.ConfigError, "quic"),
        ({"turn_secret": {"urls": ["stun:127.0.0.1:3478"], "secret": "s"}}, rtcast.ConfigError, "not a TURN URL"),
        ({"turn_secret": {"urls": ["turn:127.0.0.1:3478"], "secret": ""}}, rtcast.ConfigError, "secret is empty"),
        ({"turn_secret": {"urls": ["turn:127.0.0.1:3478"]}}, rtcast.ConfigError, "'secret'"),
        ({"turn_secret": "s3cret"}, TypeError, "turn_secret"),
        ({"authorize": "yes"}, TypeError, "callable"),
    ],
)
def test_bad_configuration_raises_and_starts_nothing(kwargs, exc, words):
    with pytest.raises(exc) as info:
        rtcast.Server(**({"port": 0, "udp_port": 0, "bind": "127.0.0.1"} | kwargs))
    assert words in str(info.value)


def test_push_after_remove_or_close_raises_stream_closed():
    server = loopback_server()
    removed = server.stream("a")
    kept = server.stream("b")
    assert server.remove_stream("a") and not server.remove_stream("a")
    with pytest.raises(rtcast.StreamClosedError, match="stream 'a' is closed"):
        removed.push_frame(RGB)
    server.close()
    assert kept.closed
    with pytest.raises(rtcast.StreamClosedError):
        kept.push_h264(b"\x00\x00\x00\x01\x65\x88")
    with pytest.raises(rtcast.ServerStoppedError):
        server.stream("c")


def test_a_viewer_keeps_playing_through_every_bad_input():
    async def main():
        with loopback_server() as server:
            stream = server.stream("cam")
            viewer = Viewer()
            with Pusher(stream) as pusher:
                pusher.set(np.full((240, 320, 3), (200, 30, 30), np.uint8))
                await viewer.connect(server.whep_url("cam"))
                await viewer.wait_for_colour((200, 30, 30))
                for name, call, exc, _ in BAD_INPUTS:
                    with pytest.raises(exc):
                        call(server, stream)
                pusher.set(np.full((240, 320, 3), (30, 30, 200), np.uint8))
                await viewer.wait_for_colour((30, 30, 200))
                assert server.stats().viewers == 1
            await viewer.close()

    asyncio.run(main())
