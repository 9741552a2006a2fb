"""The log is a way out too: a line `serve` writes never carries a card number or a secret."""

from __future__ import annotations

import io
import logging

from bot.log_format import LINE, RedactingFormatter


def _written(logger_name: str, emit: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(LINE))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        assert callable(emit)
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_card_number_in_a_log_argument_is_masked() -> None:
    line = _written("t.args", lambda log: log.warning("hold reason: %s", "card 4242424242424242 declined"))

    assert "4242424242424242" not in line and "****4242" in line


def test_a_card_number_in_a_logged_exception_is_masked_in_the_traceback_too() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("refund to 4242 4242 4242 4242 failed")
        except ValueError:
            log.exception("use case failed")

    line = _written("t.exc", emit)

    assert "Traceback" in line and "4242 4242 4242 4242" not in line and "****4242" in line
