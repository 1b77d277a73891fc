"""A stream with a ladder of renditions ("v1", "v2", ...): each rendition's encoded video is
pushed by name, the plain pushes are refused, and a ladder the core refuses raises ConfigError."""

from __future__ import annotations

import asyncio

import pytest

import rtcast

# An IDR slice in Annex B form: enough for the core to take it as a keyframe.
IDR = b"\x00\x00\x00\x01\x65\x88"
# A VP8 keyframe header of 16x16 pixels with a 1-byte first partition.
VP8_KEY = bytes([0x30, 0x00, 0x00, 0x9D, 0x01, 0x2A, 16, 0, 16, 0, 0xAA])

LADDER = [rtcast.Rendition(1280, 720, 2_500_000), rtcast.Rendition(640, 360, 800_000)]


def test_a_ladder_stream_takes_each_renditions_video_by_name(server):
    stream = server.stream("ladder", audio=False, renditions=LADDER)
    stream.push_h264(IDR, pts=0, rendition="v2")
    stream.push_h264(IDR, pts=0, rendition="v1")
    stream.push_h264(IDR, 0.033, "v2")  # positional, as the signature allows


def test_a_rendition_the_stream_lacks_raises_naming_its_renditions(server):
    stream = server.stream("ladder", audio=False, renditions=LADDER)
    with pytest.raises(rtcast.InvalidDataError) as info:
        stream.push_h264(IDR, rendition="v9")
    assert "'v9'" in str(info.value) and "v1, v2" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_plain_push_into_a_ladder_stream_raises(server):
    stream = server.stream("ladder", audio=False, renditions=LADDER)
    with pytest.raises(rtcast.InvalidDataError, match="push_h264_rendition"):
        stream.push_h264(IDR)
    vp8 = server.stream("vp8-ladder", video="vp8", audio=False, renditions=LADDER)
    with pytest.raises(rtcast.InvalidDataError, match="push_vp8_rendition"):
        vp8.push_vp8(VP8_KEY)
    vp8.push_vp8(VP8_KEY, rendition="v2")
    with pytest.raises(rtcast.UnsupportedCodecError):
        stream.push_vp8(VP8_KEY, rendition="v1")


def test_renditions_may_be_tuples_and_compare_by_value(server):
    stream = server.stream("tuples", audio=False, renditions=[(1280, 720, 2_500_000), (640, 360, 800_000)])
    stream.push_h264(IDR, rendition="v2")
    r = rtcast.Rendition(640, 360, bitrate_bps=800_000)
    assert (r.width, r.height, r.bitrate_bps) == (640, 360, 800_000)
    assert r == LADDER[1] and r != LADDER[0] and len({r, LADDER[1]}) == 1
    assert repr(r) == "Rendition(width=640, height=360, bitrate_bps=800000)"


@pytest.mark.parametrize(
    "renditions,words",
    [
        ([(640, 360, 800_000), (1280, 720, 2_500_000)], "must have a lower bitrate than v1"),
        ([(1281, 720, 2_500_000)], "rendition v1 is 1281x720"),
        ([(1280, 720, 1000)], "rendition v1: bitrate 1000"),
        ([(320, 240, 2_000_000 - i * 100_000) for i in range(9)], "at most 8"),
    ],
)
def test_a_bad_ladder_raises_config_error_and_makes_no_stream(server, renditions, words):
    with pytest.raises(rtcast.ConfigError, match=words):
        server.stream("bad", renditions=renditions)
    assert "bad" not in server.streams()


def test_a_ladder_entry_of_the_wrong_shape_is_a_type_error(server):
    with pytest.raises(TypeError):
        server.stream("bad", renditions=[(640, 360)])


def test_a_stream_of_one_rendition_is_v1_and_may_follow_its_viewers(server):
    stream = server.stream("follow", audio=False, follow_viewers_floor_bps=300_000)
    stream.push_h264(IDR)
    stream.push_h264(IDR, rendition="v1")
    with pytest.raises(rtcast.InvalidDataError, match="its renditions are v1"):
        stream.push_h264(IDR, rendition="v2")


def test_async_pushes_take_the_rendition_too(server):
    stream = server.stream("ladder", audio=False, renditions=LADDER)

    async def main():
        await stream.push_h264_async(IDR, None, "v2")
        with pytest.raises(rtcast.InvalidDataError, match="v1, v2"):
            await stream.push_h264_async(IDR, rendition="v3")

    asyncio.run(main())
