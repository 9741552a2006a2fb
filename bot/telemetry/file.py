"""Gate readings from a file a person (or a script) keeps up to date, for teams without Prometheus.

The file is YAML or JSON (JSON is YAML) mapping gate name to a number, or to null for "no data":

    auth-success: 0.998
    lookup-latency-p95: 0.18
    settlement-parity: null

It is re-read at every reading, so editing it during the window changes the next gate check. The
gate's query is not used: the file is keyed by gate name. A missing file, a missing gate or a value
that is not a finite number is no-data with a reason, never an exception.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from handlers.ports import Measurement


class FileTelemetry:
    """`Telemetry` read from a YAML/JSON file of gate name -> value."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        try:
            # Off the event loop: a file on a slow network mount must not stall Slack acks.
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return Measurement(None, f"telemetry file {self.path} does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            return Measurement(None, f"telemetry file {self.path} cannot be read: {_why(exc)}")
        return reading_from_text(text, gate=gate, source=str(self.path))


def reading_from_text(text: str, *, gate: str, source: str) -> Measurement:
    """One gate's reading from the file's text (pure; the parsing half of `FileTelemetry`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return Measurement(None, f"telemetry file {source} is not valid YAML/JSON{where}")
    if not isinstance(data, dict):
        return Measurement(None, f"telemetry file {source} must map gate names to values")
    if gate not in data:
        return Measurement(None, f"gate {gate} is not in telemetry file {source}")
    return _value(data[gate], gate=gate, source=source)


def _value(raw: Any, *, gate: str, source: str) -> Measurement:
    if raw is None:
        return Measurement(None, f"telemetry file {source} says no data for {gate}")
    # bool is an int in Python; `true` for a ratio is a typo, not 1.0.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return Measurement(None, f"value for {gate} in {source} is not a number: {str(raw)[:60]!r}")
    value = float(raw)
    if not math.isfinite(value):
        return Measurement(None, f"value for {gate} in {source} is {raw}; a gate needs a finite number")
    return Measurement(value, "")


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
