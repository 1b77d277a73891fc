"""Serve a live "webcam" to browsers: frames from a camera (OpenCV, if installed and a camera
opens) or generated with NumPy, encoded once to H.264 by rtcast for every viewer.

    pip install ./bindings/python        # from the rtcast checkout
    python examples/python/webcam_like.py                # then open the printed URL
    python examples/python/webcam_like.py --source camera --camera 0

Events (viewers joining and leaving, bitrate hints) are printed as they happen.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rtcast


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8080, help="HTTP/WebSocket/WHEP port (0: any free port)")
    p.add_argument("--udp-port", type=int, default=None, help="media UDP port (default: the same as --port)")
    p.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    p.add_argument("--public-ip", action="append", default=[], help="address to announce (1:1 NAT); repeatable")
    p.add_argument("--source", choices=["auto", "camera", "pattern"], default="auto",
                   help="auto: the camera if OpenCV is installed and one opens, else a generated pattern")
    p.add_argument("--camera", type=int, default=0, help="OpenCV camera index")
    p.add_argument("--size", default="1280x720", help="WxH of generated frames")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return p.parse_args()


def open_camera(index: int):
    """An opened cv2.VideoCapture, or None without OpenCV or camera."""
    try:
        import cv2  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        return None
    return capture


class Pattern:
    """Moving colour bars with a bouncing white square: (H, W, 3) RGB frames."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        bars = np.array([(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16),
                         (235, 16, 235), (235, 16, 16), (16, 16, 235)], np.uint8)
        columns = bars[np.arange(width) * len(bars) // width]
        self.background = np.broadcast_to(columns, (height, width, 3))
        self.frame = np.empty((height, width, 3), np.uint8)

    def draw(self, n: int) -> np.ndarray:
        np.copyto(self.frame, np.roll(self.background, n * 4, axis=1))
        side = self.height // 6
        x = (n * 7) % (self.width - side)
        y = abs((n * 5) % (2 * (self.height - side)) - (self.height - side))
        self.frame[y : y + side, x : x + side] = 255
        return self.frame


def main() -> None:
    args = parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    camera = open_camera(args.camera) if args.source != "pattern" else None
    if args.source == "camera" and camera is None:
        raise SystemExit("no camera: install opencv-python and check --camera")
    pattern = Pattern(width, height)

    with rtcast.Server(port=args.port, udp_port=args.udp_port, bind=args.bind,
                       public_ips=args.public_ip) as server:
        stream = server.stream("cam", audio=False)
        server.on_event(lambda event: print(event, flush=True))
        print(f"watch at {server.url('cam')}", flush=True)
        print(f"WHEP: {server.whep_url('cam')}  (source: {'camera' if camera else 'pattern'})", flush=True)

        start = time.monotonic()
        n = 0
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                if camera is not None:
                    ok, bgr = camera.read()  # OpenCV gives BGR, pushed as is
                    if not ok:
                        break
                    stream.push_frame(bgr, format="bgr24")
                else:
                    stream.push_frame(pattern.draw(n), pts=n / args.fps)
                    # Pace the generated frames; a camera paces itself.
                    time.sleep(max(0.0, start + (n + 1) / args.fps - time.monotonic()))
                n += 1
        except KeyboardInterrupt:
            pass
        finally:
            if camera is not None:
                camera.release()
        print(f"pushed {n} frames; {server.stats().viewers_total} viewer(s) in all", flush=True)


if __name__ == "__main__":
    main()
