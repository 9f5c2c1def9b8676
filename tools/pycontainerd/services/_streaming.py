"""Run blocking store work in a thread while streaming its progress frames to the caller."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from ..server import Result

_DONE = object()


async def run_with_progress(ctx, work: Callable[[Callable[[dict], None]], Any]):
    """An async generator: yields each dict `work(progress)` reports, then `Result(work's return)`.
    Cancelling the call sets ctx.cancelled, which the work checks between (and inside) blobs."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def progress(frame: dict) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, frame)

    future = loop.run_in_executor(None, work, progress)
    future.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, _DONE))
    # retrieved here too: when the caller went away first, nobody else looks at the work's error
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            yield item
        yield Result(future.result() or {})
    finally:
        if not future.done():
            ctx.cancelled.set()
            try:
                await asyncio.shield(future)
            except BaseException:
                pass
