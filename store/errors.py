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


class NestedTransaction(StoreError):
    """A transaction was opened inside another that holds the lock it needs: it would wait forever."""

    def __init__(self, lock: str) -> None:
        self.lock = lock
        super().__init__(
            f"a transaction already holding {lock} is open in this task; "
            "do this work inside it, or after it ends"
        )
