"""Block Kit limits: clip what Slack would reject, and check the rest with slack_sdk's own models.

Slack rejects a whole message (`invalid_blocks`, `msg_blocks_too_long`) when one field is over its
limit, and in a war room a refused message is worse than a shortened one. So each element is
clipped to its limit here with a visible note, and `problems()` reports what clipping cannot fix
(too many blocks, too much text in total) so that render.py can drop list items instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import messages as M

HEADER_TEXT_MAX = 150
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
ACTIONS_ELEMENTS_MAX = 25
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
# Slack's notification text limit is 40,000; a fallback that long helps nobody.
FALLBACK_TEXT_MAX = 3000


@dataclass(frozen=True, slots=True)
class Limits:
    max_blocks: int
    # Slack refuses messages whose blocks carry much more than ~13,000 characters in total
    # (`msg_blocks_too_long`, undocumented; see slackapi/bolt-js#2509), so budget below it.
    max_chars: int


MESSAGE = Limits(max_blocks=50, max_chars=11_000)
# After Slack refused a rendering anyway: leave a wide margin.
COMPACT = Limits(max_blocks=30, max_chars=5_000)
HOME = Limits(max_blocks=100, max_chars=24_000)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(M.ELLIPSIS), 0)].rstrip() + M.ELLIPSIS


def clip_lines(text: str, limit: int) -> str:
    """`text` cut at a line boundary to fit `limit`, with a note saying how many lines are missing."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    if len(lines) == 1:
        return clip(text, limit)
    for count in range(len(lines) - 1, 0, -1):
        candidate = "\n".join([*lines[:count], M.CLIPPED_LINES.format(n=len(lines) - count)])
        if len(candidate) <= limit:
            return candidate
    # Even the first line alone is too long: cut inside it.
    note = M.CLIPPED_LINES.format(n=len(lines) - 1)
    return clip(lines[0], limit - len(note) - 1) + "\n" + note


def _clip_text_object(obj: dict[str, Any], limit: int, *, lines: bool = False) -> None:
    text = obj.get("text")
    if isinstance(text, str):
        obj["text"] = clip_lines(text, limit) if lines else clip(text, limit)


def _clip_button(button: dict[str, Any]) -> None:
    if isinstance(button.get("text"), dict):
        _clip_text_object(button["text"], BUTTON_TEXT_MAX)
    confirm = button.get("confirm")
    if isinstance(confirm, dict):
        for key, limit in (
            ("title", CONFIRM_TITLE_MAX),
            ("text", CONFIRM_TEXT_MAX),
            ("confirm", CONFIRM_BUTTON_MAX),
            ("deny", CONFIRM_BUTTON_MAX),
        ):
            if isinstance(confirm.get(key), dict):
                _clip_text_object(confirm[key], limit)


def enforce_limits(blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks with every per-element limit applied; empty actions and context blocks dropped."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header" and isinstance(block.get("text"), dict):
            _clip_text_object(block["text"], HEADER_TEXT_MAX)
        elif kind == "section":
            if isinstance(block.get("text"), dict):
                _clip_text_object(block["text"], SECTION_TEXT_MAX, lines=True)
            fields = block.get("fields")
            if isinstance(fields, list):
                block["fields"] = fields[:SECTION_FIELDS_MAX]
                for field in block["fields"]:
                    _clip_text_object(field, FIELD_TEXT_MAX)
            if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") == "button":
                _clip_button(block["accessory"])
        elif kind == "context":
            elements = [e for e in block.get("elements") or [] if e]
            if not elements:
                continue
            block["elements"] = elements[:CONTEXT_ELEMENTS_MAX]
            for element in block["elements"]:
                _clip_text_object(element, CONTEXT_TEXT_MAX)
        elif kind == "actions":
            elements = [e for e in block.get("elements") or [] if e]
            if not elements:
                continue
            for element in elements:
                if element.get("type") == "button":
                    _clip_button(element)
            if len(elements) > ACTIONS_ELEMENTS_MAX:
                hidden = len(elements) - ACTIONS_ELEMENTS_MAX
                block["elements"] = elements[:ACTIONS_ELEMENTS_MAX]
                out.append(block)
                out.append(
                    {
                        "type": "context",
                        "elements": [{"type": "mrkdwn", "text": M.CLIPPED_BUTTONS.format(n=hidden)}],
                    }
                )
                continue
            block["elements"] = elements
        out.append(block)
    return out


def text_chars(obj: Any) -> int:
    """How many characters of text a block tree carries (what Slack's total limit counts)."""
    if isinstance(obj, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else text_chars(v) for k, v in obj.items())
    if isinstance(obj, list):
        return sum(text_chars(v) for v in obj)
    return 0


def block_problems(blocks: list[dict[str, Any]]) -> list[str]:
    """What slack_sdk's Block Kit models reject, one line per block."""
    found: list[str] = []
    for index, raw in enumerate(blocks):
        try:
            block = Block.parse(raw)
            if block is None:
                found.append(f"block {index}: unknown block type {raw.get('type')!r}")
                continue
            block.to_dict()  # runs every validator, nested elements included
        except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
            found.append(f"block {index} ({raw.get('type')}): {exc}")
    return found


def problems(blocks: list[dict[str, Any]], limits: Limits) -> list[str]:
    """Everything that would make Slack refuse these blocks; empty when they can be sent."""
    found = block_problems(blocks)
    if not blocks:
        found.append("no blocks")
    if len(blocks) > limits.max_blocks:
        found.append(f"{len(blocks)} blocks, at most {limits.max_blocks}")
    chars = text_chars(blocks)
    if chars > limits.max_chars:
        found.append(f"{chars} characters of text, budget {limits.max_chars}")
    return found


def view_problems(view: dict[str, Any], limits: Limits) -> list[str]:
    """`problems()` for an App Home view, plus what slack_sdk's View model checks."""
    found = problems(list(view.get("blocks") or []), limits)
    try:
        View(**view).to_dict()
    except (SlackObjectFormationError, TypeError, ValueError) as exc:
        found.append(f"view: {exc}")
    return found


# Keys whose strings are identifiers or machine data: redaction must never alter them.
_NOT_TEXT = frozenset(
    {
        "type",
        "action_id",
        "block_id",
        "value",
        "style",
        "url",
        "callback_id",
        "private_metadata",
        "external_id",
        "user_id",
        "channel_id",
    }
)


def map_texts(obj: Any, fn: Callable[[str], str]) -> Any:
    """`obj` with `fn` applied to every human-readable string (not ids, values, or types)."""
    if isinstance(obj, dict):
        return {k: (v if k in _NOT_TEXT else map_texts(v, fn)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [map_texts(v, fn) for v in obj]
    if isinstance(obj, str):
        return fn(obj)
    return obj
