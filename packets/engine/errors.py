"""The stage engine's refusal that is about timing, not about people.

`IllegalTransition`: the event does not fit where the run (or the checkpoint it names) is now.
Every other refusal (the person may not do it, or it was made for another plan revision or packet
version) is a plain `packets.authority.Refused`. `IllegalTransition` is a `Refused` too, so a use
case catches one type. Either way nothing changes: `step` returns nothing when it raises.
"""

from __future__ import annotations

from packets.authority import Refused
from packets.engine.events import Event
from packets.engine.progress import RunState


class IllegalTransition(Refused):
    def __init__(self, event: Event, state: RunState, detail: str = "") -> None:
        message = f"{event.kind} is not possible while the run is {state.words}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.event = event
        self.state = state
        self.detail = detail
