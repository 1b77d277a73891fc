"""rtcast: serve live video (and audio) to browsers over WebRTC.

    with rtcast.Server(port=8080) as server:
        stream = server.stream("cam")
        stream.push_frame(rgb_frame)           # (H, W, 3) uint8 NumPy array
        print(server.url("cam"))

Everything is implemented by the Rust core (the ``_rtcast`` extension); see ``_rtcast.pyi``.
"""

from ._rtcast import (
    AuthRequest,
    BindError,
    ConfigError,
    EncoderError,
    Event,
    InvalidDataError,
    InvalidFrameError,
    LimitError,
    Rendition,
    RtcastError,
    Server,
    ServerStats,
    ServerStoppedError,
    Stream,
    StreamClosedError,
    StreamStats,
    TlsError,
    UnsupportedCodecError,
    ViewerStats,
    __version__,
)
from ._aio import EventStream

__all__ = [
    "AuthRequest",
    "BindError",
    "ConfigError",
    "EncoderError",
    "Event",
    "EventStream",
    "InvalidDataError",
    "InvalidFrameError",
    "LimitError",
    "Rendition",
    "RtcastError",
    "Server",
    "ServerStats",
    "ServerStoppedError",
    "Stream",
    "StreamClosedError",
    "StreamStats",
    "TlsError",
    "UnsupportedCodecError",
    "ViewerStats",
    "__version__",
]
