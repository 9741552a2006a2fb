"""The log's way out: every line `serve` writes is redacted, traceback included.

Reasons, plan text and Slack error bodies can reach a log line through an exception message; the
formatter is the one place they are masked before they leave the process (`packets.redact`).
"""

from __future__ import annotations

import logging

from packets.redact import redact

LINE = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: int = logging.INFO) -> None:
    """Log to stderr at `level`, every line redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(LINE))
    logging.basicConfig(level=level, handlers=[handler])
