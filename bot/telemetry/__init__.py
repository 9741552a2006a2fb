"""Telemetry providers: where gate values come from, chosen per plan (`telemetry.provider`).

- `prometheus`: an instant PromQL query per gate check (`PrometheusTelemetry`).
- `file`: a YAML/JSON file of gate name -> value, re-read at every check (`FileTelemetry`).
- `simulated`: the plan's `rehearsal:` timelines (`SimulatedTelemetry`).

All implement `handlers.ports.Telemetry` and never raise: trouble is no-data with a reason.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import aiohttp

from bot.telemetry.file import FileTelemetry
from bot.telemetry.prometheus import PrometheusTelemetry
from bot.telemetry.simulated import SimulatedTelemetry
from handlers.ports import Telemetry
from packets.plan import Plan

__all__ = ["FileTelemetry", "PrometheusTelemetry", "SimulatedTelemetry", "telemetry_for"]


def telemetry_for(
    plan: Plan,
    *,
    session: aiohttp.ClientSession | None = None,
    base_dir: Path | None = None,
    window_start: datetime | None = None,
    pin_time: bool = False,
) -> Telemetry:
    """The provider the plan names.

    `base_dir` anchors a relative `telemetry.path` (pass the plan file's directory, so the plan and
    its telemetry file travel together). `window_start` is for the simulated provider (default:
    the plan's window start). `pin_time` makes Prometheus evaluate at the `at` it is given rather
    than its own now (see `bot.telemetry.prometheus`).
    """
    spec = plan.telemetry
    if spec.provider == "prometheus":
        if not spec.url:
            raise ValueError("telemetry: the prometheus provider needs a url")
        return PrometheusTelemetry(
            spec.url, timeout=spec.timeout.total_seconds(), session=session, pin_time=pin_time
        )
    if spec.provider == "file":
        if not spec.path:
            raise ValueError("telemetry: the file provider needs a path")
        path = Path(spec.path).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return FileTelemetry(path)
    return SimulatedTelemetry(plan, window_start=window_start)
