"""Every synchronous answer to the person who acted: the only messages that skip the outbox.

What the room must see is written to the outbox in the use case's transaction
(`handlers.outbox.post`) and sent by the dispatcher. What only the person who acted sees, right
now, is answered here, outside any transaction, and lost if Slack is unreachable (they can ask
again):

- the ephemeral reply to a slash command or a button click (`reply`),
- the ephemeral usage line of a malformed command, sent in the ack (`usage`),
- the App Home tab of the person who opened it (`home_view`, published with views.publish).
"""

from __future__ import annotations

from typing import Any

from bot.render import render_home
from handlers.outcome import Outcome
from packets import messages as msg
from packets.redact import redact


def reply(outcome: Outcome) -> dict[str, Any]:
    """The ephemeral answer to a command or click: the outcome's message, refusals marked."""
    text = outcome.message
    if not outcome.ok and outcome.current_version is not None and f"v{outcome.current_version}" not in text:
        text = f"{text} (current packet: v{outcome.current_version})"
    prefix = "" if outcome.ok else ":no_entry: "
    return {"response_type": "ephemeral", "replace_original": False, "text": redact(prefix + text)}


def usage(line: str) -> dict[str, Any]:
    """The ack of a command that did not parse: its usage line, for the typer only."""
    return {"response_type": "ephemeral", "text": redact(line)}


def home_view(outcome: Outcome) -> dict[str, Any]:
    """The App Home view for `handlers.status.status_for_user`'s outcome."""
    data = outcome.data
    view = msg.HomeView(
        user=str(data["user"]),
        runs=tuple(data["runs"]),
        owned=tuple(data["owned"]),
        to_ack=tuple(data["to_ack"]),
        to_release=tuple(data["to_release"]),
    )
    return render_home(view.as_json())
