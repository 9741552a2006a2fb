"""One thread per run: where each of a run's messages goes in the war room.

The run's parent message is its plan summary (the first message of the run in the channel, with
its Sign-off buttons, updated in place). Everything else the run posts to the channel goes in the
parent's thread; what needs the whole room — a hold that needs a release, a gate failure, a
rollback, a freeze, a proposal to adopt, an overrun of the window, the run's end — is also
broadcast to the channel (`reply_broadcast`). DMs, ephemeral answers and in-place updates are not
threaded. When the parent was never posted (the bot was not in the channel then), messages go to
the channel itself rather than nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.outbox import PLAN_KEY
from packets.messages import MessageKind

# Kinds the whole room must see: each asks someone to act, or tells of a failure.
_ROOM_KINDS = frozenset(
    {
        MessageKind.HOLD_OPENED,
        MessageKind.GATE_ALERT,
        MessageKind.ROLLBACK_REQUESTED,
        MessageKind.PACKET_PROPOSED_LINE,
    }
)
# Run state lines the whole room must see (`packets.engine` labels): rollbacks, a freeze, an
# overrun of the window, and the end.
_ROOM_STATES = frozenset(
    {
        "frozen",
        "rolling back",
        "cohort rolled back",
        "traffic shift refused by the control plane",
        "running past its window",
        "forecast past the window",
        "completed",
        "rolled back",
        "aborted",
        "superseded",
    }
)


@dataclass(frozen=True, slots=True)
class Placement:
    thread_key: str | None  # the dedupe key of the run's message whose thread it goes in
    broadcast: bool  # also shown in the channel


TOP_LEVEL = Placement(thread_key=None, broadcast=False)


def placement(kind: str, recipient: str, payload: Mapping[str, Any], *, run: str | None) -> Placement:
    """Where a run's message goes: in the run's thread (broadcast or not), or top level."""
    if run is None or not recipient.startswith(("C", "G")) or payload.get("target_key"):
        return TOP_LEVEL  # not a run's channel post, or an update in place
    if kind in (MessageKind.PLAN_SUMMARY, MessageKind.PACKET_SUPERSEDED):
        return TOP_LEVEL
    room = kind in _ROOM_KINDS or (kind == MessageKind.RUN_STATE and payload.get("state") in _ROOM_STATES)
    return Placement(thread_key=PLAN_KEY, broadcast=room)
