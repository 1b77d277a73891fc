"""How long `Stream.push_frame` takes from Python: 1280x720 frames at 30 fps, without a viewer
and with one (an aiortc viewer in a separate process, playing over WHEP on loopback).

    python bindings/python/bench/push_bench.py --seconds 20            # needs rtcast, numpy, aiortc

Prints the median, p99 and max of the push call (perf_counter around the call: argument
checks, the NumPy view and, with a viewer, conversion to I420, H.264 encoding and packetizing)
how many frames were pushed more than a frame late, and how busy the whole machine was (its
CPUs, /proc/stat) while measuring: figures taken on a busy machine are not comparable. Without viewers rtcast neither converts
nor encodes, so that row is the cost of the call itself. The viewer (aiortc decoding 720p) runs
on the same machine; the last row pauses its process (SIGSTOP) so nothing competes for the CPUs
while rtcast keeps encoding and sending for it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

import rtcast


def frames(width: int, height: int, fmt: str, count: int = 30) -> list:
    """A moving picture (a gradient and a sliding square), precomputed so that generating it
    costs nothing in the timed loop."""
    out = []
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    for i in range(count):
        rgb = np.empty((height, width, 3), np.uint8)
        rgb[:, :, 0] = (x + i * 8) % 256
        rgb[:, :, 1] = (y + i * 4) % 256
        rgb[:, :, 2] = ((x + y) // 4) % 256
        rgb[100 : 300, 40 * i : 40 * i + 200] = 255
        if fmt == "rgb24":
            out.append(rgb)
        elif fmt == "bgr24":
            out.append(np.ascontiguousarray(rgb[:, :, ::-1]))
        elif fmt == "rgba":
            out.append(np.dstack([rgb, np.full((height, width), 255, np.uint8)]))
        elif fmt == "i420":
            yy = np.ascontiguousarray(rgb[:, :, 1])
            out.append((yy, yy[::2, ::2].copy(), rgb[::2, ::2, 0].copy()))
    return out


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measure(stream: rtcast.Stream, pictures: list, fmt: str, seconds: float, fps: float) -> dict:
    busy0, total0 = cpu_ticks()
    durations = []
    late = 0
    n = int(seconds * fps)
    start = time.perf_counter()
    for i in range(n):
        due = start + i / fps
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - due > 1 / fps:
            late += 1
        t0 = time.perf_counter_ns()
        stream.push_frame(pictures[i % len(pictures)], format=fmt, pts=i / fps)
        durations.append((time.perf_counter_ns() - t0) / 1e6)
    busy1, total1 = cpu_ticks()
    durations.sort()
    return {
        "busy": (busy1 - busy0) / max(1, total1 - total0),
        "frames": n,
        "median_ms": statistics.median(durations),
        "p99_ms": durations[min(n - 1, int(n * 0.99))],
        "max_ms": durations[-1],
        "late": late,
    }


VIEWER = r"""
import asyncio, sys
import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription
import urllib.request

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []

async def main(url):
    pc = RTCPeerConnection()
    got = asyncio.get_running_loop().create_future()
    pc.on("track", lambda t: got.done() or got.set_result(t))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    req = urllib.request.Request(url, data=pc.localDescription.sdp.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    answer = await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=10).read())
    await pc.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
    track = await got
    n = 0
    while True:
        await track.recv()
        n += 1
        if n == 1:
            print("playing", flush=True)

asyncio.run(main(sys.argv[1]))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--fps", type=float, default=30)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--format", default="rgb24", choices=["rgb24", "bgr24", "rgba", "i420"])
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    pictures = frames(width, height, args.format)

    print(f"rtcast {rtcast.__version__}, Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print(f"push_frame of {width}x{height} {args.format} at {args.fps:g} fps for {args.seconds:g} s")
    rows = []
    # A long consent timeout keeps the paused viewer of the last row connected.
    with rtcast.Server(port=0, udp_port=0, bind="127.0.0.1", consent_timeout=300) as server:
        stream = server.stream("bench", audio=False)
        for i in range(10):  # warm-up
            stream.push_frame(pictures[i % len(pictures)], format=args.format)
        rows.append(("no viewer", measure(stream, pictures, args.format, args.seconds, args.fps)))

        viewer = subprocess.Popen([sys.executable, "-c", VIEWER, server.whep_url("bench")],
                                  stdout=subprocess.PIPE, text=True)
        try:

            async def until_playing():
                # Frames must flow for the viewer to get its first one.
                loop = asyncio.get_running_loop()
                ready = loop.run_in_executor(None, viewer.stdout.readline)
                i = 0
                while not ready.done():
                    stream.push_frame(pictures[i % len(pictures)], format=args.format)
                    i += 1
                    await asyncio.sleep(1 / args.fps)
                return await ready

            assert "playing" in asyncio.run(asyncio.wait_for(until_playing(), 30)), "viewer did not play"
            rows.append(("1 viewer playing", measure(stream, pictures, args.format, args.seconds, args.fps)))
            # The same viewer, its process stopped: rtcast still encodes and sends for it, and
            # no decoder competes for the CPUs.
            viewer.send_signal(signal.SIGSTOP)
            rows.append(("1 viewer, its process paused", measure(stream, pictures, args.format, args.seconds, args.fps)))
            viewer.send_signal(signal.SIGCONT)
            stats = stream.stats()
        finally:
            viewer.kill()
            viewer.wait()

    print(f"{'':30} {'frames':>7} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} {'late':>5} {'machine busy':>13}")
    for name, r in rows:
        print(f"{name:30} {r['frames']:7d} {r['median_ms']:10.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f} "
              f"{r['late']:5d} {r['busy']:12.0%}")
    print(f"encoded {stats.frames_encoded} frames, dropped {stats.frames_dropped}")


if __name__ == "__main__":
    main()
