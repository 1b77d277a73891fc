"""The README's Python example and examples/python/webcam_like.py run as printed and serve a
viewer (aiortc over WHEP), so neither can rot."""

from __future__ import annotations

import asyncio
import pathlib
import re
import socket
import subprocess
import sys

from conftest import Viewer

ROOT = pathlib.Path(__file__).resolve().parents[3]


def readme_python_block() -> str:
    """The first ```python block of README.md's "Use from Python" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README.md's 'Use from Python' section has no python block"
    return blocks[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def watch(child: subprocess.Popen, port: int) -> str:
    """Waits for the child's "watch at" line, plays one frame of its stream 'cam' over WHEP,
    and returns the line."""
    line = child.stdout.readline()
    assert "watch at" in line, (line, child.stderr.read() if child.poll() is not None else "")

    async def play():
        viewer = Viewer()
        await viewer.connect(f"http://127.0.0.1:{port}/cam/whep")
        frame = await viewer.frame()
        await viewer.close()
        return frame

    frame = asyncio.run(play())
    assert (frame.width, frame.height) == (1280, 720)
    return line


def finish(child: subprocess.Popen, timeout: float = 60) -> str:
    try:
        out, err = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    return out


def test_readme_python_example_runs_as_printed_and_serves_a_viewer():
    code = readme_python_block()
    assert "port=8080" in code
    port = free_port()
    # The one change: a free port instead of 8080, which may be taken on a test machine.
    code = code.replace("port=8080", f"port={port}")
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = watch(child, port)
    assert line.startswith("watch at http://") and line.rstrip().endswith(f":{port}/cam/embed.html")
    out = finish(child)
    assert "viewer_joined" in out  # server.on_event(print)


def test_webcam_like_example_starts_serves_and_stops_after_its_duration():
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "examples/python/webcam_like.py"), "--port", str(port),
         "--bind", "127.0.0.1", "--source", "pattern", "--duration", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = watch(child, port)
    assert f"http://127.0.0.1:{port}/cam/embed.html" in line
    out = finish(child)
    assert "1 viewer(s) in all" in out and "viewer_joined" in out
