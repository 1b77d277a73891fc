"""Pushed media reaches an independent WebRTC client (aiortc over WHEP) intact."""

from __future__ import annotations

import asyncio
import fractions
import sys
import threading

import av
import numpy as np
from aiortc.codecs import h264 as aiortc_h264
from aiortc.codecs import vpx as aiortc_vpx
from conftest import Pusher, Viewer, loopback_server, yuv601


def solid_rgb(w, h, rgb):
    return np.full((h, w, 3), rgb, np.uint8)


def solid_i420(w, h, rgb):
    y, u, v = yuv601(rgb)
    return (
        np.full((h, w), y, np.uint8),
        np.full((h // 2, w // 2), u, np.uint8),
        np.full((h // 2, w // 2), v, np.uint8),
    )


def test_solid_colour_frames_of_every_format_arrive_with_their_colour_and_size():
    red, green, blue, yellow, magenta, cyan = (
        (220, 30, 30), (30, 200, 40), (40, 40, 220), (230, 220, 30), (200, 40, 200), (30, 200, 210),
    )

    async def main():
        with loopback_server() as server:
            stream = server.stream("colours", audio=False)
            viewer = Viewer()
            with Pusher(stream) as pusher:
                pusher.set(solid_rgb(320, 240, red))
                await viewer.connect(server.whep_url("colours"))
                await viewer.wait_for_colour(red, size=(320, 240))

                # The viewer's figures, as its media loop publishes them (about once a second).
                for _ in range(50):
                    figures = stream.viewer_stats()
                    if figures and figures[0].bitrate_bps > 0:
                        break
                    await asyncio.sleep(0.1)
                [mine] = figures
                assert (mine.stream, mine.protocol, mine.transport) == ("colours", "whep", "udp")
                assert mine.bytes_sent > 0 and mine.bitrate_bps > 0, mine
                assert mine.remote.startswith("127.0.0.1:"), mine
                assert mine.rendition == "v1", mine
                assert mine.estimate_bps is None or mine.estimate_bps > 0, mine
                assert [v.id for v in server.viewer_stats()] == [mine.id]

                # rgba: alpha is ignored.
                rgba = np.dstack([solid_rgb(320, 240, green), np.full((240, 320), 7, np.uint8)])
                pusher.set(rgba)
                await viewer.wait_for_colour(green, size=(320, 240))

                bgra = np.dstack([solid_rgb(320, 240, blue[::-1]), np.full((240, 320), 255, np.uint8)])
                pusher.set(bgra, "bgra")
                await viewer.wait_for_colour(blue, size=(320, 240))

                # bgr24, as OpenCV gives: the same bytes as red in RGB order mean blue here.
                pusher.set(solid_rgb(320, 240, red[::-1]), "bgr24")
                await viewer.wait_for_colour(red, size=(320, 240))
                pusher.set(solid_rgb(320, 240, blue[::-1]), "bgr")
                await viewer.wait_for_colour(blue, size=(320, 240))

                # A new size: the encoder starts over with an IDR at 640x360.
                pusher.set(solid_i420(640, 360, yellow))
                await viewer.wait_for_colour(yellow, size=(640, 360))

                y, u, v = solid_i420(640, 360, magenta)
                pusher.set(np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(540, 640), "i420")
                await viewer.wait_for_colour(magenta, size=(640, 360))

                y, u, v = solid_i420(320, 240, cyan)
                uv = np.dstack([u, v])  # (H/2, W/2, 2): interleaved U,V
                pusher.set((y, uv))
                await viewer.wait_for_colour(cyan, size=(320, 240))

                # Packed NV12 in one array, and an RGB view with padded rows (a crop: no copy).
                pusher.set(np.concatenate([y, uv.reshape(120, 320)]), "nv12")
                await viewer.wait_for_colour(cyan, size=(320, 240))

                big = solid_rgb(400, 300, red)
                crop = big[10:250, 20:340]
                assert not crop.flags["C_CONTIGUOUS"]
                pusher.set(crop)
                await viewer.wait_for_colour(red, size=(320, 240))
            stats = stream.stats()
            assert stats.frames_encoded > 0 and stats.viewers == 1
            await viewer.close()

    asyncio.run(main())


def split_nals(au: bytes) -> list[bytes]:
    """NAL units of an Annex B access unit (start codes of 3 or 4 bytes)."""
    parts = au.split(b"\x00\x00\x01")
    # A 4-byte start code leaves a zero at the end of the previous part; NAL units never end in 0.
    return [p.rstrip(b"\x00") for p in parts[1:] if p.rstrip(b"\x00")]


def normalized(au: bytes) -> bytes:
    """The access unit as a WebRTC receiver reassembles it: 4-byte start codes, no delimiters
    (NAL type 9, which rtcast does not send)."""
    return b"".join(b"\x00\x00\x00\x01" + n for n in split_nals(au) if n[0] & 0x1F != 9)


def encode_h264(count: int, w: int = 320, h: int = 240) -> list[bytes]:
    """Access units of a moving picture from PyAV's libx264: constrained baseline, no B-frames,
    one IDR at the start. Independent of rtcast's own encoder."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency",
                   "bframes": "0", "g": "300", "x264-params": "aud=1"}
    aus: list[bytes] = []
    for i in range(count):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = (np.arange(w) * 2 + i * 8) % 256
        img[:, :, 1] = (np.arange(h)[:, None] + i * 5) % 256
        img[20 + i : 60 + i, 30:90] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        aus += [bytes(p) for p in ctx.encode(frame)]
    aus += [bytes(p) for p in ctx.encode(None)]
    return aus


def test_pushed_h264_access_units_arrive_byte_for_byte():
    # aiortc's jitter buffer hands a frame on when the next one starts: the last access unit pushed
    # only flushes the one before it, so 46 are pushed and the first 45 compared.
    aus = encode_h264(46)
    assert len(aus) == 46
    compared = 45
    assert any(n[0] & 0x1F == 5 for n in split_nals(aus[0])), "first access unit is an IDR"

    received: list[bytes] = []
    lock = threading.Lock()
    original = aiortc_h264.H264Decoder.decode

    def recording_decode(self, encoded_frame):
        with lock:  # aiortc's decoder thread: the depacketized access unit, before decoding
            received.append(bytes(encoded_frame.data))
        return original(self, encoded_frame)

    async def main():
        with loopback_server() as server:
            stream = server.stream("h264", audio=False)
            events = server.events()
            viewer = Viewer()
            await viewer.connect(server.whep_url("h264"))
            async for event in events:
                if event.kind == "viewer_joined":
                    break
            for i, au in enumerate(aus):
                stream.push_h264(au, pts=i / 30)
                await asyncio.sleep(1 / 30)
            decoded = 0
            while decoded < compared:
                await viewer.frame()
                decoded += 1
            await viewer.close()
        return decoded

    aiortc_h264.H264Decoder.decode = recording_decode
    try:
        decoded = asyncio.run(main())
    finally:
        aiortc_h264.H264Decoder.decode = original
    assert decoded == compared
    with lock:
        assert received[:compared] == [normalized(a) for a in aus[:compared]]


def encode_vp8(count: int, w: int = 320, h: int = 240) -> list[bytes]:
    """VP8 frames of a moving picture from PyAV's libvpx, independent of rtcast."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.bit_rate = 500_000
    ctx.options = {"deadline": "realtime", "lag-in-frames": "0", "g": "300"}
    frames: list[bytes] = []
    for i in range(count):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 2] = (np.arange(w) + i * 6) % 256
        img[40 + i : 80 + i, 100:160] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        frames += [bytes(p) for p in ctx.encode(frame)]
    frames += [bytes(p) for p in ctx.encode(None)]
    return frames


def test_pushed_vp8_frames_arrive_byte_for_byte():
    frames = encode_vp8(31)
    assert len(frames) == 31
    assert frames[0][0] & 1 == 0, "first frame is a keyframe"
    compared = 30  # the last one only flushes aiortc's jitter buffer (see the H.264 test)

    received: list[bytes] = []
    lock = threading.Lock()
    original = aiortc_vpx.Vp8Decoder.decode

    def recording_decode(self, encoded_frame):
        with lock:
            received.append(bytes(encoded_frame.data))
        return original(self, encoded_frame)

    async def main():
        with loopback_server() as server:
            stream = server.stream("vp8", video="vp8", audio=False)
            events = server.events()
            viewer = Viewer()
            await viewer.connect(server.whep_url("vp8"))
            async for event in events:
                if event.kind == "viewer_joined":
                    break
            for i, data in enumerate(frames):
                stream.push_vp8(data, pts=i / 30)
                await asyncio.sleep(1 / 30)
            for _ in range(compared):
                frame = await viewer.frame()
                assert (frame.width, frame.height) == (320, 240)
            await viewer.close()

    aiortc_vpx.Vp8Decoder.decode = recording_decode
    try:
        asyncio.run(main())
    finally:
        aiortc_vpx.Vp8Decoder.decode = original
    with lock:
        assert received[:compared] == frames[:compared]


def test_contiguous_arrays_are_pushed_without_a_copy_and_others_with_one():
    """NumPy reports its allocations to tracemalloc: pushing a C-contiguous 720p frame (or a
    crop, whose rows are contiguous) allocates nothing near a frame's size; a view whose pixels
    are not contiguous in a row is copied once."""
    import tracemalloc

    frame = np.zeros((720, 1280, 3), np.uint8)
    frame_bytes = frame.nbytes
    with loopback_server() as server:
        stream = server.stream("cam", audio=False)

        def peak_of(push) -> int:
            tracemalloc.start()
            try:
                push()
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

        stream.push_frame(frame)  # first call: lazy imports out of the way
        assert peak_of(lambda: stream.push_frame(frame)) < frame_bytes // 10
        big = np.zeros((800, 1400, 3), np.uint8)
        assert peak_of(lambda: stream.push_frame(big[40:760, 60:1340])) < frame_bytes // 10
        assert peak_of(lambda: stream.push_frame(frame[:, ::-1])) >= frame_bytes
        assert peak_of(lambda: stream.push_frame(frame, format="rgb24", pts=1.0)) < frame_bytes // 10


def test_other_python_threads_run_while_a_frame_is_pushed():
    """While one thread is inside push_frame (the core validating and copying a frame for its
    encoder thread, a viewer watching), the main thread executes Python. The frame is 3840x2160,
    the largest the encoder takes: its 25 MB copy keeps the push in the core for milliseconds
    (a 720p copy took well under one, and the main thread sometimes woke too late to see it).
    With a switch interval of minutes, the GIL changes hands only when released on purpose: if push_frame kept it, the main thread would get it only after the
    push thread ended (0 spins); since it is released, the main thread gets it while the push is
    in the core and keeps it (the push cannot return meanwhile) until it reaches its cap."""
    frame = np.random.default_rng(3).integers(0, 255, (2160, 3840, 3), np.uint8)
    cap = 200_000

    async def main():
        with loopback_server() as server:
            stream = server.stream("cam", audio=False)
            viewer = Viewer()
            with Pusher(stream) as pusher:
                pusher.set(solid_rgb(320, 240, (0, 0, 0)))
                await viewer.connect(server.whep_url("cam"))
                await viewer.frame()  # the encoder runs: a viewer watches
            counts = []
            interval = sys.getswitchinterval()
            sys.setswitchinterval(120)
            try:
                for _ in range(3):
                    inside, done = threading.Event(), threading.Event()

                    def push():
                        inside.set()
                        stream.push_frame(frame)
                        done.set()

                    pushing = threading.Thread(target=push)
                    pushing.start()
                    inside.wait()
                    spins = 0
                    while not done.is_set() and spins < cap:
                        spins += 1
                    pushing.join()
                    counts.append(spins)
            finally:
                sys.setswitchinterval(interval)
            # The frames are encoded on the stream's encoder thread, after the pushes returned.
            for _ in range(400):  # 4K frames take openh264 a while
                if stream.stats().frames_encoded >= 3:
                    break
                await asyncio.sleep(0.05)
            assert stream.stats().frames_encoded >= 3
            await viewer.close()
            return counts

    assert asyncio.run(main()) == [cap] * 3
