"""The forecast of a loaded run, and the drift proposal it causes (issue 12).

`forecast_of(ctx)` is `packets.forecast.forecast` over what the use case loaded: planned times
from the authoritative packet, actual times from the engine and from people, forecast at `now`.
"""

from __future__ import annotations

from handlers.context import RunContext
from packets.forecast import Forecast, forecast


def forecast_of(ctx: RunContext) -> Forecast:
    return forecast(
        plan=ctx.plan,
        packet=ctx.packet,
        progress=ctx.progress,
        facts=ctx.working_facts,
        now=ctx.now,
        acting=ctx.acting,
    )
