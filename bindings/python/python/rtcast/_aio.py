"""The asyncio face of rtcast: ``async for event in server.events()``, ``async with``, and the
``*_async`` calls.

The server's event thread hands each event to the event loop that created the iterator with
``loop.call_soon_threadsafe``; the loop is never blocked and nothing polls. Calls that take time
(encoding a frame, stopping a server) run on the loop's default executor, as
``asyncio.to_thread`` does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

_T = TypeVar("_T")


async def off_loop(call: Callable[..., _T], args: tuple) -> _T:
    """Runs ``call(*args)`` on the running loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, call, *args)


async def ready(value: Any) -> Any:
    """An awaitable of ``value`` (``Server.__aenter__``)."""
    return value

if TYPE_CHECKING:
    from ._rtcast import Event, Server


class EventStream:
    """Async iterator over a server's events; ends when the server stops.

    Create it with ``Server.events(max_queue=1024)`` inside a coroutine. Events that arrive while
    nobody awaits wait in a queue of at most ``max_queue``; when it is full the oldest waiting
    event is dropped and counted (``dropped`` here, ``events_dropped`` in ``Server.stats()``).
    """

    def __init__(self, server: Server, max_queue: int = 1024) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Optional[Event]] = asyncio.Queue()
        self._max_queue = max_queue
        #: Events dropped because the queue was full.
        self.dropped = 0
        self._server: Optional[Server] = server
        self._done = not server._subscribe(self._deliver)

    def _deliver(self, event: Optional[Event]) -> None:
        # On the rtcast event thread.
        try:
            self._loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:
            pass  # the loop is closed: nobody is listening any more

    def _put(self, event: Optional[Event]) -> None:
        # On the loop. The end marker (None) always gets in.
        if event is not None and self._queue.qsize() >= self._max_queue:
            self._queue.get_nowait()
            self.dropped += 1
            if self._server is not None:
                self._server._note_events_dropped(1)
        self._queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._finish()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stops listening; the iterator ends."""
        self._finish()

    def _finish(self) -> None:
        self._done = True
        server, self._server = self._server, None
        if server is not None:
            server.off_event(self._deliver)
