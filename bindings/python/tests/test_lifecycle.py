"""Leaving `with`, garbage collection, interpreter exit and Ctrl-C stop the server: its ports are
released and no thread of it is left (counted in /proc/self/task)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
from conftest import Viewer, loopback_server, os_threads

import rtcast

FRAME = np.zeros((240, 320, 3), np.uint8)


def wait_for_threads(expected: int, timeout: float = 5) -> int:
    """The OS thread count once it is at most `expected`, or the last count after `timeout`.
    Threads of other libraries (asyncio's executor) may take a moment to exit after their join;
    fewer than before is no leak (a thread of an earlier test may end meanwhile)."""
    deadline = time.monotonic() + timeout
    while (n := os_threads()) > expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return n


def settled_threads(timeout: float = 5) -> int:
    """The OS thread count once it stopped changing for 200 ms (threads of an earlier test may
    still be ending), or after `timeout`."""
    deadline = time.monotonic() + timeout
    n, since = os_threads(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 0.2:
        time.sleep(0.02)
        if (m := os_threads()) != n:
            n, since = m, time.monotonic()
    return n


def port_is_free(port: int) -> bool:
    """A new server can listen on `port` (TCP and UDP) again."""
    try:
        rtcast.Server(port=port, udp_port=port, bind="127.0.0.1").close()
        return True
    except rtcast.BindError:
        return False


def test_leaving_with_stops_the_server_and_its_threads_after_a_viewer_played():
    before = settled_threads()

    async def main():
        with loopback_server() as server:
            assert os_threads() > before  # the core's runtime and the event thread
            stream = server.stream("cam")
            viewer = Viewer()
            stop = threading.Event()

            def push():
                while not stop.wait(1 / 30):
                    stream.push_frame(FRAME)

            pusher = threading.Thread(target=push)
            pusher.start()
            await viewer.connect(server.whep_url("cam"))
            await viewer.frame()
            port = server.port
            stop.set()
            pusher.join()
        assert server.closed and stream.closed
        assert port_is_free(port)
        await viewer.pc.close()

    asyncio.run(main())
    assert wait_for_threads(before) <= before


def test_garbage_collection_stops_an_unreferenced_server():
    before = settled_threads()

    def start() -> int:
        server = loopback_server()
        server.stream("cam").push_frame(FRAME)
        # A reference cycle through a callback: only the cycle collector frees it.
        server.on_event(lambda event: server.streams())
        return server.port

    port = start()
    gc.collect()
    assert wait_for_threads(before) <= before
    assert port_is_free(port)


def test_a_stream_outliving_its_server_raises_stream_closed():
    server = loopback_server()
    stream = server.stream("cam")
    del server
    gc.collect()
    assert stream.closed
    try:
        stream.push_frame(FRAME)
    except rtcast.StreamClosedError as e:
        assert "closed" in str(e)
    else:
        raise AssertionError("push into a stopped server's stream did not raise")


def test_close_from_an_event_callback_does_not_deadlock():
    before = settled_threads()
    closed = threading.Event()
    server = loopback_server()
    server.stream("enc", audio=False)

    @server.on_event
    def close_on_join(event):
        if event.kind == "viewer_joined":
            server.close()
            closed.set()

    async def watch():
        viewer = Viewer()
        await viewer.connect(server.whep_url("enc"))
        await asyncio.to_thread(closed.wait, 15)
        await viewer.pc.close()

    asyncio.run(watch())
    assert closed.is_set() and server.closed
    del server, close_on_join
    gc.collect()
    assert wait_for_threads(before) <= before


CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import rtcast

    use_with = sys.argv[1] == "with"
    frame = np.zeros((240, 320, 3), np.uint8)
    print("baseline", len(os.listdir("/proc/self/task")), flush=True)  # NumPy's BLAS threads
    server = rtcast.Server(port=0, udp_port=0, bind="127.0.0.1")
    stream = server.stream("cam")
    server.on_event(print)
    ready = "serving %d %d" % (server.port, len(os.listdir("/proc/self/task")))
    if use_with:
        try:
            with server:
                print(ready, flush=True)
                while True:
                    stream.push_frame(frame)
                    time.sleep(1 / 30)
        except KeyboardInterrupt:
            print("threads", len(os.listdir("/proc/self/task")), flush=True)
            sys.exit(3)
    print(ready, flush=True)
    while True:  # no `with`: the interpreter's exit stops the server
        stream.push_frame(frame)
        time.sleep(1 / 30)
    """
)


def run_child_until_sigint(mode: str):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        baseline = child.stdout.readline().split()
        assert baseline[:1] == ["baseline"], (baseline, child.stderr.read())
        line = child.stdout.readline().split()
        assert line[:1] == ["serving"], (line, child.stderr.read())
        port = int(line[1])
        assert int(line[2]) > int(baseline[1])  # the server's threads run
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, out, err, port, int(baseline[1])


def test_ctrl_c_inside_with_stops_the_server_and_leaves_no_thread_of_it():
    code, out, err, port, baseline = run_child_until_sigint("with")
    assert code == 3, err
    assert f"threads {baseline}" in out, (out, err, baseline)
    assert port_is_free(port)


def test_ctrl_c_without_with_exits_the_process_and_releases_the_port():
    code, out, err, port, _ = run_child_until_sigint("bare")
    # Python exits by the signal's default action after the KeyboardInterrupt traceback.
    assert code in (-signal.SIGINT, 1, 130), (code, err)
    assert "KeyboardInterrupt" in err
    assert "panicked" not in err
    assert port_is_free(port)
