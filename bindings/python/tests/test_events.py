"""Events reach Python both as callbacks and through the async iterator; the asyncio variants of
the calls work and never block the event loop."""

from __future__ import annotations

import asyncio
import queue
import sys
import threading

import numpy as np
import pytest
from conftest import Viewer, loopback_server

import rtcast


async def next_event(events: rtcast.EventStream, kind: str, timeout: float = 15) -> rtcast.Event:
    async def find():
        async for event in events:
            if event.kind == kind:
                return event
        raise AssertionError(f"events ended before {kind}")

    return await asyncio.wait_for(find(), timeout)


def test_viewer_and_keyframe_events_reach_callbacks_and_the_async_iterator():
    called: queue.Queue = queue.Queue()
    threads: set = set()

    async def main():
        async with loopback_server() as server:
            @server.on_event
            def record(event):
                threads.add(threading.get_native_id())
                called.put(event)

            server.stream("enc", audio=False)  # encoded H.264: nothing pushed yet
            events = server.events()
            viewer = Viewer()
            await viewer.connect(server.whep_url("enc"))

            # No keyframe to replay to the new viewer: the host is asked for one as soon as the
            # viewer comes (so it is there when the viewer has connected), before it joins.
            requested = await next_event(events, "keyframe_requested")
            assert (requested.stream, requested.rendition) == ("enc", "v1")
            assert requested.from_ is None and requested.estimate_bps is None
            joined = await next_event(events, "viewer_joined")
            assert (joined.stream, joined.protocol) == ("enc", "whep")
            assert joined.viewer is not None and joined.remote.startswith("127.0.0.1:")

            await viewer.close()
            left = await next_event(events, "viewer_left")
            assert left.viewer == joined.viewer and left.reason == "closed"
            assert server.off_event(record) and not server.off_event(record)
        # The server stopped: the iterator ends.
        assert [e async for e in events] == []

    asyncio.run(main())
    seen = []
    while not called.empty():
        seen.append(called.get())
    kinds = [e.kind for e in seen]
    assert kinds[:2] == ["keyframe_requested", "viewer_joined"] and "viewer_left" in kinds
    # One rtcast thread delivers every callback, never the thread running the loop.
    assert len(threads) == 1 and threading.get_native_id() not in threads


def test_a_failing_callback_is_reported_and_does_not_stop_the_others(monkeypatch):
    got = threading.Event()
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))
    with loopback_server() as server:
        server.on_event(lambda e: 1 / 0)
        server.on_event(lambda e: got.set())
        stream = server.stream("enc", audio=False)

        async def watch():
            viewer = Viewer()
            await viewer.connect(server.whep_url("enc"))
            await asyncio.to_thread(got.wait, 15)
            await viewer.close()

        asyncio.run(watch())
        assert got.is_set()
        stream.push_frame(np.zeros((240, 320, 3), np.uint8))
    assert ZeroDivisionError in reported


def test_async_pushes_reach_a_viewer_and_raise_their_errors_when_awaited():
    async def main():
        async with loopback_server() as server:
            stream = server.stream("cam", audio=True)
            viewer = Viewer()
            await viewer.connect(server.whep_url("cam"))
            colour = (40, 180, 90)
            frame = np.full((240, 320, 3), colour, np.uint8)

            async def push():
                for i in range(300):
                    await stream.push_frame_async(frame, pts=i / 30)
                    await asyncio.sleep(1 / 30)

            pushing = asyncio.ensure_future(push())
            try:
                await viewer.wait_for_colour(colour, size=(320, 240))
            finally:
                pushing.cancel()
            with pytest.raises(rtcast.InvalidFrameError, match="dtype uint8"):
                await stream.push_frame_async(frame.astype(np.float32))
            with pytest.raises(rtcast.InvalidDataError):
                await stream.push_h264_async(b"nonsense")
            with pytest.raises(rtcast.UnsupportedCodecError):
                await stream.push_vp8_async(b"\x10\x02\x00\x9d\x01\x2a")
            await stream.push_opus_async(b"\xf8\xff\xfe")
            await viewer.close()
        assert server.closed and stream.closed
        await server.close_async()  # idempotent

    asyncio.run(main())


def test_the_loop_keeps_running_while_frames_are_encoded_off_it():
    """A ticker on the loop advances while a 720p frame is encoded on the executor."""

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        with loopback_server() as server:
            stream = server.stream("big", audio=False)
            frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), np.uint8)
            task = asyncio.ensure_future(ticker())
            await asyncio.sleep(0)
            before = ticks
            for _ in range(5):
                await stream.push_frame_async(frame)
            task.cancel()
            assert ticks > before
            assert stream.stats().video_frames == 5

    asyncio.run(main())


def test_a_viewers_bandwidth_estimate_arrives_as_a_bitrate_hint():
    """A viewer's REMB (goog-remb) reaches the host as a bitrate_hint event. aiortc estimates
    bandwidth only with abs-send-time, which rtcast does not send, so the viewer sends its REMB
    by hand through aiortc's RTCP path."""
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci
    from conftest import Pusher

    async def main():
        async with loopback_server() as server:
            stream = server.stream("cam", audio=False)
            events = server.events()
            viewer = Viewer()
            with Pusher(stream) as pusher:
                pusher.set(np.zeros((240, 320, 3), np.uint8))
                await viewer.connect(server.whep_url("cam"))
                await viewer.frame()
                receiver = viewer.pc.getReceivers()[0]
                ssrcs = [s.source for s in receiver.getSynchronizationSources()]
                remb = RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(750_000, ssrcs),
                )
                await receiver._send_rtcp(remb)
                hint = await next_event(events, "bitrate_hint")
            assert (hint.stream, hint.bps, hint.viewer) == ("cam", 750_000, None)
            await viewer.close()

    asyncio.run(main())


def test_an_unread_event_stream_is_bounded_and_counts_what_it_dropped():
    async def main():
        async with loopback_server() as server:
            server.stream("enc", audio=False)
            events = server.events(max_queue=1)
            with pytest.raises(ValueError):
                server.events(max_queue=0)
            # Two viewers come and go while nobody reads: at least four events (joined and
            # left each), one place in the queue.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30

            async def until(done):
                while not done():
                    assert loop.time() < deadline, (events.dropped, server.stats())
                    await asyncio.sleep(0.05)

            for n in (1, 2):
                viewer = Viewer()
                await viewer.connect(server.whep_url("enc"))
                await until(lambda: server.stats().viewers_total == n)
                await viewer.close()
                await until(lambda: server.stats().viewers == 0)
            await until(lambda: events.dropped >= 3)
            await asyncio.sleep(0.2)
            assert server.stats().events_dropped == events.dropped
            # What is left is the newest: the second viewer leaving.
            last = await asyncio.wait_for(events.__anext__(), 5)
            assert last.kind == "viewer_left", last

    asyncio.run(main())
