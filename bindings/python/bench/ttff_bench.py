"""Time to first frame of an aiortc viewer on loopback: rtcast over WHEP and over its WebSocket
(Flussonic) protocol, against a small aiortc-based WHEP server in Python (the reference of
issue 10), on the same 1280x720 30 fps H.264 content, for several keyframe intervals (GOPs).

    python bindings/python/bench/ttff_bench.py                    # needs rtcast, aiortc, av, numpy, aiohttp
    python bindings/python/bench/ttff_bench.py --trials 15 --gops 1,4 --warmup 3
    python bindings/python/bench/ttff_bench.py --cases rtcast,aiortc   # leave out the pre-encoded runs

Each server runs in its own process (this script started with --serve) and has been streaming for
--warmup seconds before the first viewer joins, so every viewer is a late joiner, at a different
place in the GOP each trial. Servers:

- rtcast: `rtcast.Server` on 127.0.0.1, `server.stream(keyframe_interval=GOP)` fed raw I420
  frames at 30 fps with `push_frame` (rtcast encodes once for all viewers, default 2 Mbit/s);
- rtcast-h264: the same, fed H.264 pre-encoded by libx264 (PyAV, baseline, 2 Mbit/s, one IDR every
  GOP seconds) with `push_h264`: rtcast cannot ask this source for a keyframe and replays its GOP;
- aiortc: an aiohttp WHEP endpoint, one RTCPeerConnection per viewer with its own
  VideoStreamTrack producing the same raw frames at 30 fps (aiortc encodes per viewer, with
  libx264, so its first frame is always an IDR: the GOP does not apply).

The viewer (this process) is aiortc: a fresh RTCPeerConnection per trial, host candidates on
127.0.0.1 only, no STUN. A trial's time runs from the start of signalling (before createOffer for
WHEP; before the WebSocket is opened for WS, where the server offers) to `await track.recv()`
returning the first decoded frame. Phases, as the viewer sees them (ms from the start): `sig` the
offer (WHEP: our offer made; WS: the server's offer received), `ans` the answer (WHEP: 201
received; WS: our answer sent), `ice` iceConnectionState "completed", `dtls` connectionState
"connected", `rtp` the first RTP packet, `au` the first packet with the marker bit (the end of a
frame), `frame` the first decoded frame. aiortc hands a frame to its decoder only when a packet of
the next frame arrives, so `frame` - `au` is up to a frame interval (33 ms) when the server sends
frames as they come, and a few ms when it sends a burst (a replayed GOP). Prints p50, p90 and max
per case, the first trial (the first of a process may be slower), the p50 of each phase, and how
busy the whole machine was (its CPUs, /proc/stat) during each case: figures taken on a busy
machine are not comparable. --verbose prints every trial.

Trials are 1-1.5 s apart by default: rtcast replays a GOP of up to 15 frames (0.5 s) to a new
viewer of its encoder, so viewers closer together than that start on the IDR made for the one
before (try --pause 0.2 --jitter 0 for a burst of joiners).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Optional

import numpy as np

FPS = 30
WIDTH, HEIGHT = 1280, 720
STREAM = "bench"


# ---------------------------------------------------------------------------------------------
# Content: the same frames for every server.


def pictures(count: int = FPS) -> list:
    """A moving picture (a gradient and a sliding square) as packed I420 arrays (H*3/2, W), the
    layout of both rtcast's `format="i420"` and PyAV's yuv420p ndarray."""
    import av

    out = []
    x = np.arange(WIDTH, dtype=np.uint16)
    y = np.arange(HEIGHT, dtype=np.uint16)[:, None]
    for i in range(count):
        rgb = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        rgb[:, :, 0] = (x + i * 8) % 256
        rgb[:, :, 1] = (y + i * 4) % 256
        rgb[:, :, 2] = ((x + y) // 4) % 256
        rgb[100:300, 40 * i : 40 * i + 200] = 255
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        out.append(np.ascontiguousarray(frame.to_ndarray()))
    return out


def pre_encode(pics: list, gop_s: float, seconds: int = 8) -> list:
    """`seconds` of the pictures as H.264 access units (Annex B, SPS/PPS before each IDR), an IDR
    every `gop_s` seconds; the loop length is a multiple of the GOP so it loops seamlessly."""
    import av

    gop = max(1, round(gop_s * FPS))
    n = max(gop, (seconds * FPS // gop) * gop)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.framerate = fractions.Fraction(FPS, 1)
    enc.time_base = fractions.Fraction(1, FPS)
    enc.bit_rate = 2_000_000
    enc.gop_size = gop
    enc.max_b_frames = 0
    enc.profile = "Baseline"
    enc.options = {"preset": "veryfast", "tune": "zerolatency", "keyint_min": str(gop),
                   "sc_threshold": "0", "level": "31"}
    aus = []
    for i in range(n):
        f = av.VideoFrame.from_ndarray(pics[i % len(pics)], format="yuv420p")
        f.pts = i
        aus.extend(bytes(p) for p in enc.encode(f))
    aus.extend(bytes(p) for p in enc.encode(None))
    assert len(aus) == n, (len(aus), n)
    return aus


# ---------------------------------------------------------------------------------------------
# Servers (each in its own process: `--serve KIND`). They print their base URL, then serve
# until stdin closes.


def serve_rtcast(gop_s: float, encoded: bool) -> None:
    import rtcast

    pics = pictures()
    aus = pre_encode(pics, gop_s) if encoded else None
    with rtcast.Server(port=0, udp_port=0, bind="127.0.0.1") as server:
        if encoded:
            stream = server.stream(STREAM, audio=False)
        else:
            stream = server.stream(STREAM, audio=False, keyframe_interval=gop_s)
        stop = threading.Event()

        def push() -> None:
            start = time.perf_counter()
            i = 0
            while not stop.is_set():
                due = start + i / FPS
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                if encoded:
                    stream.push_h264(aus[i % len(aus)], pts=i / FPS)
                else:
                    stream.push_frame(pics[i % len(pics)], format="i420", pts=i / FPS)
                i += 1

        t = threading.Thread(target=push, name="pusher")
        t.start()
        print(f"http://127.0.0.1:{server.port}", flush=True)
        sys.stdin.read()
        stop.set()
        t.join()


def serve_aiortc() -> None:
    import av
    from aiohttp import web
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

    loopback_ice()
    pics = pictures()

    class PatternTrack(VideoStreamTrack):
        """The same raw frames at 30 fps (VideoStreamTrack paces them); aiortc encodes them."""

        def __init__(self) -> None:
            super().__init__()
            self.i = 0

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(pics[self.i % len(pics)], format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
            self.i += 1
            return frame

    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/H264", "video/rtx")]
    pcs: dict = {}

    async def whep(request: web.Request) -> web.Response:
        offer = await request.text()
        pc = RTCPeerConnection()
        sid = str(id(pc))
        pcs[sid] = pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                pcs.pop(sid, None)
                await pc.close()

        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        pc.addTrack(PatternTrack())
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.setCodecPreferences(h264)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                            headers={"Location": f"/{STREAM}/whep/{sid}"})

    async def delete(request: web.Request) -> web.Response:
        pc = pcs.pop(request.match_info["sid"], None)
        if pc is None:
            return web.Response(status=404)
        await pc.close()
        return web.Response(status=200)

    async def main() -> None:
        app = web.Application()
        app.router.add_post(f"/{STREAM}/whep", whep)
        app.router.add_delete(f"/{STREAM}/whep/{{sid}}", delete)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"http://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for pc in list(pcs.values()):
            await pc.close()
        await runner.cleanup()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# The viewer.


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


PHASES = ["sig", "ans", "ice", "dtls", "rtp", "au", "frame"]


class Trial:
    """The phases of one viewer, ms from the start of signalling."""

    current: Optional["Trial"] = None

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.at: dict = {}

    def mark(self, phase: str) -> None:
        if phase not in self.at:
            self.at[phase] = (time.perf_counter() - self.t0) * 1000


def loopback_ice() -> None:
    """aioice leaves loopback out when it gathers host candidates: offer 127.0.0.1 only (as
    tests/conftest.py does), no STUN."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def hook_aiortc() -> None:
    """Loopback ICE and a note of each trial's first RTP packet and first end of frame."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    loopback_ice()
    original = RTCRtpReceiver._handle_rtp_packet

    async def handle_rtp_packet(self, packet, arrival_time_ms):
        if Trial.current is not None:
            Trial.current.mark("rtp")
            if packet.marker:
                Trial.current.mark("au")
        return await original(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = handle_rtp_packet


def new_pc(trial: Trial):
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()  # no ICE servers: host candidates only
    got_track: asyncio.Future = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track) -> None:
        if track.kind == "video" and not got_track.done():
            got_track.set_result(track)

    @pc.on("iceconnectionstatechange")
    def on_ice() -> None:
        if pc.iceConnectionState == "completed":
            trial.mark("ice")

    @pc.on("connectionstatechange")
    def on_conn() -> None:
        if pc.connectionState == "connected":
            trial.mark("dtls")

    return pc, got_track


async def whep_trial(session, base: str, trial: Trial) -> None:
    from aiortc import RTCSessionDescription

    pc, got_track = new_pc(trial)
    location = None
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        trial.mark("sig")
        async with session.post(f"{base}/{STREAM}/whep", data=pc.localDescription.sdp,
                                headers={"Content-Type": "application/sdp"}) as resp:
            body = await resp.text()
            assert resp.status == 201, f"WHEP POST answered {resp.status}: {body!r}"
            location = resp.headers.get("Location")
        trial.mark("ans")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        track = await got_track
        await track.recv()
        trial.mark("frame")
    finally:
        await pc.close()
        if location:
            url = base + location if location.startswith("/") else location
            async with session.delete(url) as resp:
                await resp.read()


async def ws_trial(session, base: str, trial: Trial) -> None:
    from aiortc import RTCSessionDescription
    from aiortc.sdp import candidate_from_sdp

    pc, got_track = new_pc(trial)
    ws = await session.ws_connect(base.replace("http", "ws", 1) + f"/{STREAM}/webrtc")
    reader = None
    try:
        msg = json.loads((await ws.receive()).data)
        assert msg.get("type") == "offer", msg
        trial.mark("sig")
        await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))

        async def read() -> None:  # the server's trickled candidates
            async for m in ws:
                v = json.loads(m.data)
                if v.get("type") == "candidate" and v.get("candidate"):
                    c = v["candidate"]
                    s = c["candidate"]
                    if s:
                        cand = candidate_from_sdp(s.split(":", 1)[1] if s.startswith("candidate:") else s)
                        cand.sdpMid = c.get("sdpMid", "0")
                        cand.sdpMLineIndex = c.get("sdpMLineIndex", 0)
                        await pc.addIceCandidate(cand)
                elif v.get("type") == "error":
                    raise AssertionError(f"server error: {v}")

        reader = asyncio.ensure_future(read())
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        await ws.send_str(json.dumps({"type": "answer", "sdp": sdp}))
        trial.mark("ans")
        # Our candidates as Flussonic's documented client trickles them (aiortc also puts them in
        # the answer), then end-of-candidates.
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                await ws.send_str(json.dumps({
                    "type": "candidate", "stream_id": "local1", "label": 0, "id": "0",
                    "candidate": {"candidate": line[2:], "sdpMid": "0", "sdpMLineIndex": 0}}))
        await ws.send_str(json.dumps({"type": "candidate", "candidate": None}))
        track = await got_track
        await track.recv()
        trial.mark("frame")
    finally:
        if reader is not None:
            reader.cancel()
        await pc.close()
        await ws.close()


def pct(values: list, q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


async def run_server(kind: str, gop: Optional[float], protocols: list, args) -> list:
    """Starts one server process, waits --warmup seconds, runs the trials (alternating the
    protocols); returns a row per protocol."""
    import aiohttp

    cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind]
    if gop is not None:
        cmd += ["--gop", str(gop)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base = (await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)).strip()
        assert base.startswith("http"), f"server {kind} did not start"
        await asyncio.sleep(args.warmup)
        results: dict = {p: [] for p in protocols}
        failures: dict = {p: 0 for p in protocols}
        busy0, total0 = cpu_ticks()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for _ in range(args.trials):
                for p in protocols:
                    trial = Trial()
                    Trial.current = trial
                    try:
                        run = whep_trial if p == "whep" else ws_trial
                        await asyncio.wait_for(run(session, base, trial), args.timeout)
                        results[p].append(trial.at)
                        if args.verbose:
                            print(f"  {kind} {p} gop={gop}: " + " ".join(
                                f"{k} {trial.at[k]:.0f}" for k in PHASES if k in trial.at))
                    except Exception as e:  # noqa: BLE001 - counted and shown
                        failures[p] += 1
                        print(f"  {kind} {p} gop={gop}: trial failed: {e!r}", file=sys.stderr)
                    finally:
                        Trial.current = None
                    await asyncio.sleep(args.pause + random.uniform(0, args.jitter))
        busy1, total1 = cpu_ticks()
        busy = (busy1 - busy0) / max(1, total1 - total0)
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [(kind, p, gop, results[p], failures[p], busy) for p in protocols]


def print_row(kind, proto, gop, trials, failures, busy) -> None:
    name = f"{kind} {proto.upper()}"
    gop_s = "-" if gop is None else f"{gop:g} s"
    if not trials:
        print(f"{name:<18} {gop_s:>5}   all {failures} trials failed")
        return
    ttff = [t["frame"] for t in trials]
    phases = " ".join(
        f"{statistics.median([t[p] for t in trials if p in t]):5.0f}" if any(p in t for t in trials) else "    -"
        for p in PHASES)
    print(f"{name:<18} {gop_s:>5} {len(ttff):3d}{'/' + str(failures) + 'F' if failures else '':<4}"
          f"{pct(ttff, 0.5):6.0f} {pct(ttff, 0.9):6.0f} {max(ttff):6.0f} {ttff[0]:6.0f}  "
          f"{busy * 100:4.0f}%   {phases}")


async def bench(args) -> None:
    hook_aiortc()
    import aiortc
    import rtcast

    gops = [float(g) for g in args.gops.split(",")]
    cases = args.cases.split(",")
    b0, t0 = cpu_ticks()
    await asyncio.sleep(1)
    b1, t1 = cpu_ticks()
    print(f"rtcast {rtcast.__version__}, aiortc {aiortc.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); machine busy "
          f"{(b1 - b0) * 100 / max(1, t1 - t0):.0f}% before starting")
    print(f"{WIDTH}x{HEIGHT} {FPS} fps H.264, {args.trials} trials per case, viewers join after "
          f"the stream has run {args.warmup:g} s, {args.pause:g}-{args.pause + args.jitter:g} s between trials")
    print(f"{'case':<18} {'GOP':>5} {'n':>3}     {'p50':>6} {'p90':>6} {'max':>6} {'first':>6}  "
          f"{'busy':>5}   p50 ms of: {' '.join(f'{p:>5}' for p in PHASES)}")
    for case in cases:
        if case == "aiortc":
            rows = await run_server("aiortc", None, ["whep"], args)
        elif case in ("rtcast", "rtcast-h264"):
            rows = []
            for gop in gops:
                rows += await run_server(case, gop, ["whep", "ws"], args)
        else:
            raise SystemExit(f"unknown case {case!r}")
        for row in rows:
            print_row(*row)
            sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=15)
    p.add_argument("--gops", default="1,4", help="keyframe intervals of rtcast's streams, seconds")
    p.add_argument("--cases", default="rtcast,rtcast-h264,aiortc")
    p.add_argument("--warmup", type=float, default=3, help="seconds the stream runs before the first viewer")
    p.add_argument("--pause", type=float, default=1.0,
                   help="seconds between trials; rtcast replays a GOP of up to 15 frames to a new "
                        "viewer of its encoder, so under 0.5 s each viewer gets the IDR made for "
                        "the one before")
    p.add_argument("--jitter", type=float, default=0.5,
                   help="random seconds added to each pause, so viewers join at any point of a frame")
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--verbose", action="store_true", help="print the phases of every trial")
    p.add_argument("--serve", choices=["rtcast", "rtcast-h264", "aiortc"], help=argparse.SUPPRESS)
    p.add_argument("--gop", type=float, default=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve == "aiortc":
        serve_aiortc()
    elif args.serve:
        serve_rtcast(args.gop, args.serve == "rtcast-h264")
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
