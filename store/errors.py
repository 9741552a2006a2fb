"""The store's typed errors; expected outcomes (a lost compare-and-set) are booleans, not these."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class RunNotFound(StoreError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r}")


class RunExists(StoreError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} already exists")


class StaleWrite(StoreError):
    """The run row changed since it was read: someone else saved first."""

    def __init__(self, run_id: str, expected_lock_version: int) -> None:
        self.run_id = run_id
        self.expected_lock_version = expected_lock_version
        super().__init__(f"run {run_id!r} is no longer at lock_version {expected_lock_version}")
