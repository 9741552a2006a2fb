"""Keys asked for at about one moment, handled together.

The scheduler's tick jobs fire one by one, and each run a tick changes asks for its job to be
derived again; handled one at a time, each costs transactions of its own. `Batches` gathers the
keys added by the end of the event loop's turn (and those added while a batch is being handled)
and hands them to one function, `size` at a time, answering each key's future with its result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

R = TypeVar("R")


class Batches(Generic[R]):
    def __init__(
        self, handle: Callable[[list[str]], Awaitable[Mapping[str, R]]], *, size: int | None, name: str
    ) -> None:
        self._handle = handle
        self._size = size
        self._name = name
        self._waiting: dict[str, asyncio.Future[R | None]] = {}
        # The one task handling batches, while there are keys waiting.
        self.task: asyncio.Task[None] | None = None

    def add(self, key: str) -> asyncio.Future[R | None]:
        """`key`'s future: its result once its batch is handled (None when it gave none)."""
        waiting = self._waiting.get(key)
        if waiting is None:
            loop = asyncio.get_running_loop()
            waiting = self._waiting[key] = loop.create_future()
            if self.task is None or self.task.done():
                self.task = loop.create_task(self._run(), name=self._name)
        return waiting

    def clear(self) -> None:
        """Forget the keys waiting (the scheduler is stopping)."""
        self._waiting.clear()

    async def _run(self) -> None:
        # One turn of the loop: the keys added at this moment join the first batch.
        await asyncio.sleep(0)
        while self._waiting:
            keys = list(self._waiting)[: self._size]
            batch = {key: self._waiting.pop(key) for key in keys}
            results: Mapping[str, R] = {}
            try:
                results = await self._handle(keys)
            finally:
                # Also when cancelled: whoever waits hears that nothing came of it.
                for key, waiting in batch.items():
                    if not waiting.done():
                        waiting.set_result(results.get(key))
