"""The process's queue for SQLite's one write lock: first come, first served, except that an
urgent writer goes before every writer not urgent already waiting.

Urgent is for a write someone is waiting on right now (the inbox row Slack's 200 waits for, see
bot/intake.py); the work behind it is done in the background and can take the next turn. A
writer already holding the lock keeps it: nothing is interrupted, an urgent writer waits for at
most the transaction in progress and the urgent ones before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriterLock:
    def __init__(self) -> None:
        self._held = False
        # Turns waiting; a released lock passes straight to the next live one, still held, so a
        # newcomer never slips in between (as asyncio.Lock could not promise urgent ones).
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def held(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held:
            self._held = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._others
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed the lock just as it was cancelled: pass it on
            elif turn in queue:
                queue.remove(turn)
            raise

    def _release(self) -> None:
        for queue in (self._urgent, self._others):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._held = False
