"""Type stubs of the rtcast extension module (checked against the module by tests/test_stubs.py)."""

import datetime
import os
from types import TracebackType
from typing import Any, Callable, Coroutine, Literal, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union, final

import numpy as np
import numpy.typing as npt

from ._aio import EventStream

__all__ = [
    "__version__",
    "Server",
    "AuthRequest",
    "Stream",
    "Rendition",
    "Event",
    "ServerStats",
    "StreamStats",
    "ViewerStats",
    "RtcastError",
    "ConfigError",
    "BindError",
    "TlsError",
    "InvalidFrameError",
    "InvalidDataError",
    "UnsupportedCodecError",
    "EncoderError",
    "StreamClosedError",
    "ServerStoppedError",
    "LimitError",
    "_close_all",
]

__version__: str

_F = TypeVar("_F", bound=Callable[["Event"], Any])
_Pts = Union[int, float, datetime.timedelta, None]
_Bytes = Union[bytes, bytearray, memoryview, npt.NDArray[np.uint8]]
_Array = npt.NDArray[np.uint8]
_Frame = Union[_Array, Tuple[_Array, _Array, _Array], Tuple[_Array, _Array]]
_Format = Literal["rgb24", "rgb", "bgr24", "bgr", "rgba", "bgra", "i420", "nv12"]

class RtcastError(Exception):
    """Base class of every error raised by rtcast."""

class ConfigError(RtcastError, ValueError):
    """A configuration value is out of range or inconsistent (also a ValueError)."""

class BindError(RtcastError, OSError):
    """A port could not be bound, e.g. already in use (also an OSError with errno)."""

class TlsError(RtcastError):
    """The TLS certificate or key could not be read or used."""

class InvalidFrameError(RtcastError, ValueError):
    """A raw frame does not match its format: dtype, shape, size or strides (also a ValueError)."""

class InvalidDataError(RtcastError, ValueError):
    """Encoded data is not what the call says it is, e.g. not H.264 Annex B (also a ValueError)."""

class UnsupportedCodecError(RtcastError, ValueError):
    """The codec is unknown or not enabled for this stream (also a ValueError)."""

class EncoderError(RtcastError):
    """The built-in H.264 encoder failed."""

class StreamClosedError(RtcastError):
    """The stream was removed or its server stopped: pushing into it is no longer possible."""

class ServerStoppedError(RtcastError):
    """The server was stopped."""

class LimitError(RtcastError):
    """A limit was reached (viewers, queues)."""

@final
class Event:
    """Something that happened on the server; fields that do not apply to `kind` are None."""

    @property
    def kind(
        self,
    ) -> Literal["viewer_joined", "viewer_left", "keyframe_requested", "rendition_switched", "bitrate_hint"]: ...
    @property
    def stream(self) -> str: ...
    @property
    def viewer(self) -> Optional[int]: ...
    @property
    def protocol(self) -> Optional[Literal["websocket", "whep"]]: ...
    @property
    def remote(self) -> Optional[str]: ...
    @property
    def reason(self) -> Optional[Literal["closed", "connection_lost", "timeout", "shutdown"]]: ...
    @property
    def bps(self) -> Optional[int]: ...
    @property
    def rendition(self) -> Optional[str]:
        """The rendition that needs a keyframe ("v1" for a stream of one): keyframe_requested."""
    @property
    def from_(self) -> Optional[str]:
        """The rendition the viewer had (rendition_switched); `from` is a Python keyword."""
    @property
    def to(self) -> Optional[str]:
        """The rendition the viewer has now (rendition_switched)."""
    @property
    def estimate_bps(self) -> Optional[int]:
        """The viewer's bandwidth estimate when the switch was decided, bits per second (0 when
        it had none): rendition_switched."""

@final
class AuthRequest:
    """What the `authorize` callable is asked: may this viewer watch?"""

    @property
    def stream(self) -> str: ...
    @property
    def token(self) -> Optional[str]: ...
    @property
    def remote(self) -> str: ...
    @property
    def protocol(self) -> Literal["websocket", "whep"]: ...

@final
class ServerStats:
    """Counters of the whole server."""

    @property
    def viewers(self) -> int: ...
    @property
    def viewers_total(self) -> int: ...
    @property
    def streams(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def send_drops(self) -> int: ...
    @property
    def nacks(self) -> int: ...
    @property
    def plis(self) -> int: ...
    @property
    def keyframe_requests(self) -> int: ...
    @property
    def frames_dropped(self) -> int: ...
    @property
    def events_dropped(self) -> int: ...
    @property
    def ttff_p50_ms(self) -> float: ...

@final
class StreamStats:
    """Counters of one stream."""

    @property
    def name(self) -> str: ...
    @property
    def viewers(self) -> int: ...
    @property
    def video_frames(self) -> int: ...
    @property
    def audio_packets(self) -> int: ...
    @property
    def frames_dropped(self) -> int: ...
    @property
    def frames_encoded(self) -> int: ...
    @property
    def keyframe_requests(self) -> int: ...

@final
class ViewerStats:
    """One connected viewer's figures, as its media loop last published them (about once a
    second)."""

    @property
    def id(self) -> int: ...
    @property
    def stream(self) -> str: ...
    @property
    def protocol(self) -> Literal["websocket", "whep"]: ...
    @property
    def transport(self) -> Literal["udp", "tcp"]: ...
    @property
    def remote(self) -> str: ...
    @property
    def connected_ms(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def bitrate_bps(self) -> int: ...
    @property
    def rtt_ms(self) -> Optional[float]: ...
    @property
    def fraction_lost(self) -> float: ...
    @property
    def packets_lost(self) -> int: ...
    @property
    def jitter_ms(self) -> float: ...
    @property
    def nacks(self) -> int: ...
    @property
    def plis(self) -> int: ...
    @property
    def rendition(self) -> str:
        """The rendition it is sent: "v1", "v2"... ("v1" for a stream of one)."""
    @property
    def estimate_bps(self) -> Optional[int]:
        """Its bandwidth estimate, bits per second; None before the first."""

@final
class Rendition:
    """One video rendition of a stream's ladder (`Server.stream(renditions=[...])`), named by
    its place: "v1" (the first, the best), "v2", ..."""

    def __new__(cls, width: int, height: int, bitrate_bps: int) -> Rendition: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def bitrate_bps(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Stream:
    """A live stream; got from `Server.stream()`. Pushes never wait for the network."""

    @property
    def name(self) -> str: ...
    @property
    def viewers(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> StreamStats: ...
    def viewer_stats(self) -> list[ViewerStats]: ...
    def push_frame(self, frame: _Frame, format: Optional[_Format] = None, pts: _Pts = None) -> None:
        """Pushes a raw uint8 frame: (H, W, 3) rgb24/bgr24 (OpenCV's order: `format="bgr24"`),
        (H, W, 4) rgba/bgra, (H*3/2, W) packed
        i420/nv12 with `format=`, or planes (y, u, v) i420 / (y, uv) nv12. Copied once with the
        GIL released (contiguous rows are read in place) and encoded once (H.264) for all
        viewers on the stream's encoder thread; the array is free again when the call returns.

        Raises InvalidFrameError (dtype, shape, size, format), TypeError (not an array),
        ValueError (negative pts), StreamClosedError, EncoderError."""
    def push_h264(self, data: _Bytes, pts: _Pts = None, rendition: Optional[str] = None) -> None:
        """Pushes one H.264 access unit, Annex B. A stream with several renditions takes each
        one's video by name, `rendition="v1"`, "v2"... (push every rendition's frame of an
        instant with the same pts). Raises InvalidDataError (not Annex B; a rendition the stream
        does not have; no rendition on a stream of several), StreamClosedError."""
    def push_vp8(self, data: _Bytes, pts: _Pts = None, rendition: Optional[str] = None) -> None:
        """Pushes one VP8 frame (frame tag first) into a stream created with video="vp8";
        `rendition` as for push_h264. Raises InvalidDataError, UnsupportedCodecError (not a VP8
        stream), StreamClosedError."""
    def push_opus(self, data: _Bytes, pts: _Pts = None) -> None:
        """Pushes one Opus packet. Raises InvalidDataError, UnsupportedCodecError (stream without
        audio), StreamClosedError."""
    def push_frame_async(
        self, frame: _Frame, format: Optional[_Format] = None, pts: _Pts = None
    ) -> Coroutine[Any, Any, None]:
        """push_frame on the event loop's default executor: the loop is not blocked while the
        frame is encoded. Raises what push_frame raises, when awaited. Await each push before
        the next: pushes started together may run in any order."""
    def push_h264_async(
        self, data: _Bytes, pts: _Pts = None, rendition: Optional[str] = None
    ) -> Coroutine[Any, Any, None]: ...
    def push_vp8_async(
        self, data: _Bytes, pts: _Pts = None, rendition: Optional[str] = None
    ) -> Coroutine[Any, Any, None]: ...
    def push_opus_async(self, data: _Bytes, pts: _Pts = None) -> Coroutine[Any, Any, None]: ...

@final
class Server:
    """A running rtcast server; a context manager. Stopped by close(), `with` exit, garbage
    collection or interpreter exit, leaving no thread behind."""

    def __new__(
        cls,
        port: int = 8080,
        *,
        udp_port: Optional[int] = None,
        bind: str = "0.0.0.0",
        public_ips: Sequence[str] = ...,
        ice_servers: Sequence[Union[str, Mapping[str, Any]]] = ...,
        turn_secret: Optional[Mapping[str, Any]] = None,
        cert: Union[str, os.PathLike[str], None] = None,
        key: Union[str, os.PathLike[str], None] = None,
        max_viewers: Optional[int] = None,
        max_viewers_per_stream: Optional[int] = None,
        max_connecting_per_address: Optional[int] = None,
        max_connecting: Optional[int] = None,
        max_message_bytes: Optional[int] = None,
        connect_timeout: Optional[float] = None,
        consent_timeout: Optional[float] = None,
        cors_origins: Optional[Sequence[str]] = None,
        authorize: Optional[Callable[[AuthRequest], bool]] = None,
        media_loops: int = 0,
        tcp_port: Optional[int] = None,
        candidates: Optional[str] = None,
    ) -> Server:
        """Starts a server. `port` 0 picks a free port; `udp_port` None uses the same number as
        `port`; `media_loops` 0 runs one media loop per core; `tcp_port` (ICE-TCP, for viewers
        whose network blocks UDP) None uses the UDP port's number, on the HTTP listener when that
        is `port`; `candidates` is which candidates viewers are offered, e.g. "udp,tcp,local,public"
        (the default) or "udp". `turn_secret={"urls": ["turn:HOST:3478"], "secret": S, "ttl":
        86400}` hands each viewer that TURN server with short-lived credentials from the shared
        secret S (coturn's static-auth-secret; ttl in seconds, default a day). Raises BindError,
        TlsError, ConfigError."""
    def stream(
        self,
        name: str,
        *,
        audio: bool = True,
        video: Literal["h264", "vp8"] = "h264",
        bitrate: Optional[int] = None,
        max_fps: Optional[float] = None,
        keyframe_interval: Optional[float] = None,
        renditions: Sequence[Union[Rendition, Tuple[int, int, int]]] = ...,
        follow_viewers_floor_bps: Optional[int] = None,
    ) -> Stream:
        """The stream `name`, created if new. `video="vp8"` streams take push_vp8 only (the
        built-in encoder makes H.264). `renditions` is a ladder of `Rendition(width, height,
        bitrate_bps)` or `(width, height, bitrate_bps)`, best first with decreasing bitrates (at
        most 8), named "v1", "v2"...: each viewer gets the best one its network carries; raw
        frames are scaled and encoded once per rendition, encoded video is pushed per rendition
        (`push_h264(..., rendition="v2")`). `follow_viewers_floor_bps` lets the built-in encoder
        of a stream of one rendition lower its bitrate to its slowest viewer's bandwidth
        estimate, not under this floor. Raises ConfigError (bad name, bad ladder),
        UnsupportedCodecError, ServerStoppedError, LimitError."""
    def remove_stream(self, name: str) -> bool: ...
    def streams(self) -> list[str]: ...
    def url(self, stream: str) -> str: ...
    def whep_url(self, stream: str) -> str: ...
    def ws_url(self, stream: str) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def udp_port(self) -> int: ...
    @property
    def tcp_port(self) -> int: ...
    def stats(self) -> ServerStats: ...
    def stream_stats(self) -> list[StreamStats]: ...
    def viewer_stats(self) -> list[ViewerStats]: ...
    def on_event(self, callback: _F) -> _F:
        """Calls `callback(event)` on an rtcast thread for every event; usable as a decorator."""
    def off_event(self, callback: Callable[[Event], Any]) -> bool: ...
    def _subscribe(self, callback: Callable[[Optional[Event]], Any]) -> bool: ...
    def _note_events_dropped(self, n: int) -> None: ...
    def events(self, max_queue: int = 1024) -> EventStream:
        """Async iterator of events, ending when the server stops; call it inside a coroutine.
        At most `max_queue` events wait; when full, the oldest is dropped and counted
        (`EventStream.dropped`, `ServerStats.events_dropped`)."""
    def close(self) -> None:
        """Stops the server and joins its threads. Idempotent."""
    def close_async(self) -> Coroutine[Any, Any, None]:
        """close() on the event loop's default executor."""
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Server: ...
    def __exit__(
        self,
        *_args: Union[Type[BaseException], BaseException, TracebackType, None],
    ) -> bool: ...
    def __aenter__(self) -> Coroutine[Any, Any, Server]: ...
    def __aexit__(
        self,
        *_args: Union[Type[BaseException], BaseException, TracebackType, None],
    ) -> Coroutine[Any, Any, None]: ...

def _close_all() -> None: ...
