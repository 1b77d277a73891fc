"""Time to the first presented frame in a cold headless Chromium, on loopback: rtcast's embed.html
player over its WebSocket (Flussonic) protocol and over WHEP (?proto=whep).

    cargo build --release -p rtcast --features cli --bin rtcast
    pip install aiohttp
    python scripts/chromium_ttff.py                     # 10 runs of each protocol
    python scripts/chromium_ttff.py --runs 20 --protos ws --rtcast target/release/rtcast

It starts `rtcast demo` on 127.0.0.1 (the built-in test pattern, 1280x720 30 fps H.264, encoded
once by rtcast), then for each run launches a fresh Chromium (new profile, the flags of the
browser tests) straight onto the page, so every run pays Chromium's cold start of its WebRTC and
media stacks, as a visitor opening the page does. Runs of the protocols alternate.

A run's time is the page's own: from the start of signalling (`window.rtcastSignalStart`: just
before the WebSocket is opened; just before the WHEP POST) to the first frame the <video> presents
(requestVideoFrameCallback). The page also records its phases (`window.rtcastMarks`, ms from the
same start): WebSocket `open`, server `offer`, `remote` (offer applied), `answer` sent; WHEP
`response`; `connecting`, `connected` (the peer connection's state) and `audio` (when the audio
track joined the played stream). Prints every run, then per protocol the median, p90 and max, and
the median of each phase; for the WebSocket player also the time from the socket's `open`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

# The browser tests' flags (tests/src/chromium.rs: FLAGS and RESOLVER_RULES); keep them in step.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
]

# Null until the first frame was presented and the page's audio joined (or 1.5 s passed).
PROBE = """JSON.stringify((() => {
  const v = document.querySelector('video');
  if (!v) return null;
  if (!v.__ttff) { v.__ttff = true; v.requestVideoFrameCallback(() => { v.__first = performance.now(); }); }
  if (v.__first === undefined) return null;
  const marks = window.rtcastMarks || {};
  if (marks.audio === undefined && performance.now() - v.__first < 1500) return null;
  return { ttff: Math.round(v.__first - window.rtcastSignalStart), marks: marks };
})())"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def devtools_call(ws, ident: int, method: str, params: dict) -> dict:
    await ws.send_json({"id": ident, "method": method, "params": params})
    while True:
        msg = await ws.receive_json()
        if msg.get("id") == ident:
            return msg


async def one_run(chromium: str, url: str, timeout: float) -> dict | None:
    profile = tempfile.mkdtemp(prefix="rtcast-ttff-")
    debug_port = free_port()
    browser = subprocess.Popen(
        [chromium, *FLAGS, f"--remote-debugging-port={debug_port}", f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        async with aiohttp.ClientSession() as http:
            page = None
            while page is None and time.monotonic() < deadline:
                try:
                    async with http.get(f"http://127.0.0.1:{debug_port}/json") as res:
                        tabs = await res.json()
                    page = next((t for t in tabs if t.get("type") == "page" and t.get("url", "").startswith(url.split("?")[0])), None)
                except aiohttp.ClientError:
                    pass
                if page is None:
                    await asyncio.sleep(0.02)
            if page is None:
                return None
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ident = 0
                while time.monotonic() < deadline:
                    ident += 1
                    reply = await devtools_call(ws, ident, "Runtime.evaluate", {"expression": PROBE})
                    value = reply.get("result", {}).get("result", {}).get("value")
                    if value and value != "null":
                        return json.loads(value)
                    await asyncio.sleep(0.02)
        return None
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtcast", default="target/release/rtcast", help="the rtcast CLI binary")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--runs", type=int, default=10, help="cold launches per protocol")
    parser.add_argument("--protos", default="ws,whep", help="ws, whep or both, comma-separated")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per run at most")
    args = parser.parse_args()
    protos = [p for p in args.protos.split(",") if p]
    port = free_port()
    server = subprocess.Popen(
        [args.rtcast, "demo", "--bind", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, list[dict]] = {p: [] for p in protos}
    try:
        base = f"http://127.0.0.1:{port}/demo/embed.html"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(base) as res:
                        if res.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        for run in range(args.runs):
            for proto in protos:
                url = base if proto == "ws" else f"{base}?proto=whep"
                result = await one_run(args.chromium, url, args.timeout)
                print(f"{proto:5} run {run + 1:2}: {json.dumps(result)}", flush=True)
                if result:
                    results[proto].append(result)
    finally:
        server.kill()
        server.wait()
    failed = False
    for proto, runs in results.items():
        if not runs:
            print(f"{proto}: no run presented a frame")
            failed = True
            continue
        ttff = [r["ttff"] for r in runs]
        phases = {}
        for r in runs:
            for name, ms in r["marks"].items():
                phases.setdefault(name, []).append(ms)
        phase_medians = ", ".join(f"{n} {statistics.median(v):.0f}" for n, v in sorted(phases.items(), key=lambda kv: statistics.median(kv[1])))
        print(
            f"{proto}: {len(runs)}/{args.runs} runs, first frame p50 {statistics.median(ttff):.0f} ms, "
            f"p90 {percentile(ttff, 90):.0f}, max {max(ttff)}; phase medians (ms): {phase_medians}"
        )
        # The goal's own measure for the WebSocket player starts when the socket is open (a
        # cold browser's connect is before it); the WHEP one starts at the POST, as above.
        since_open = [r["ttff"] - r["marks"]["open"] for r in runs if "open" in r["marks"]]
        if since_open:
            print(
                f"{proto}: from WebSocket open to first frame p50 {statistics.median(since_open):.0f} ms, "
                f"p90 {percentile(since_open, 90):.0f}, max {max(since_open)}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
