"""The queue for SQLite's write lock: first come, first served, urgent writers first."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

import pytest

from store.writer_lock import WriterLock


class Write(Protocol):
    def __call__(self, name: str, *, urgent: bool = False) -> Coroutine[Any, Any, None]: ...


def _writer(lock: WriterLock, order: list[str]) -> Write:
    """A writer that notes its name once it holds the lock."""

    async def write(name: str, *, urgent: bool = False) -> None:
        async with lock.held(urgent=urgent):
            order.append(name)

    return write


async def test_an_urgent_writer_goes_before_the_writers_already_waiting() -> None:
    lock, order = WriterLock(), list[str]()
    write = _writer(lock, order)
    async with lock.held():
        background = [asyncio.create_task(write(f"background {i}")) for i in (1, 2)]
        await asyncio.sleep(0)  # both are queued
        urgent = [asyncio.create_task(write(f"ack {i}", urgent=True)) for i in (1, 2)]
        await asyncio.sleep(0)
        order.append("holder")

    await asyncio.gather(*background, *urgent)
    assert order == ["holder", "ack 1", "ack 2", "background 1", "background 2"]


async def test_a_writer_cancelled_while_it_waits_leaves_the_queue_moving() -> None:
    lock, order = WriterLock(), list[str]()
    write = _writer(lock, order)
    async with lock.held():
        gone = asyncio.create_task(write("gone"))
        kept = asyncio.create_task(write("kept"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)

    await kept
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert order == ["kept"]
    await write("after")
    assert order == ["kept", "after"]


async def test_a_writer_cancelled_just_as_the_lock_was_handed_to_it_passes_it_on() -> None:
    lock, order = WriterLock(), list[str]()
    write = _writer(lock, order)
    async with lock.held():
        first = asyncio.create_task(write("first"))
        second = asyncio.create_task(write("second"))
        await asyncio.sleep(0)
    first.cancel()  # the lock is already its own; it has not run since

    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert order == ["second"]
    await write("after")
    assert order == ["second", "after"]
