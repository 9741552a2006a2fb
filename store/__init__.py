"""Persistence: SQLAlchemy 2 async tables, the unit of work, the ledger and the outbox.

Start at `store.db` (engines, migrations) and `store.uow` (transactions and the repositories they
expose). Knows SQL; knows nothing about Slack. Imports `packets` only for `canonical_json`.
"""
