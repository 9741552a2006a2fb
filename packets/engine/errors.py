"""The stage engine's two ways of saying no, under one base so a use case catches one type.

`IllegalTransition`: the event does not fit where the run (or the checkpoint it names) is now.
`Refusal`: the event fits, but the person may not do it, or it was made for another plan
revision or packet version. Either way nothing changes: `step` returns nothing when it raises.
"""

from __future__ import annotations

from packets.engine.events import Event
from packets.engine.progress import RunState


class EngineError(Exception):
    """Base of everything `stages.step` raises on purpose; the message is written for a person."""


class IllegalTransition(EngineError):
    def __init__(self, event: Event, state: RunState, detail: str = "") -> None:
        self.event = event
        self.state = state
        self.detail = detail
        message = f"{event.kind} is not possible while the run is {state}"
        super().__init__(f"{message}: {detail}" if detail else message)


class Refusal(EngineError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
