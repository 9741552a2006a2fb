"""Plain dicts in, Block Kit out: one Jinja2 template per message kind, checked before it is sent.

`render(kind, data)` renders `bot/templates/<kind>.j2` to JSON text and parses it. Templates emit
every string through the `tojson` filter, so no value can break the JSON, and free text through
`esc`, so a reason typed by a person can never become a mention or a link. Each block in a
template's list is followed by a comma and the list ends with `null`, which is dropped here: no
template counts commas.

Then, in this order: every human-readable string passes through `packets.redact.redact`; each
element is clipped to its Slack limit (bot/blocks.py); and when the whole message is still too big
(more than 50 blocks, or more text than Slack accepts in one message), the long lists of the
payload (the timeline, the hold register, a DM's changes ...) are shortened, keeping as many items
as fit, and the template says "… N more — see /cutover packet". A message is shortened, never
refused by Slack for its size.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from bot import blocks as B
from bot import messages as M
from bot.ids import ActionId, ButtonValue
from packets.messages import MessageKind
from packets.redact import redact
from packets.text import inert

TEMPLATES = Path(__file__).parent / "templates"
# Timeline lines per section: ten lines of ~120 characters stay well inside a section's 3,000.
LINES_PER_SECTION = 10
TITLE_MAX = 100
DETAIL_MAX = 300


class RenderError(Exception):
    """A payload that cannot be rendered: a field missing, an unknown kind, or limits unmeetable."""


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """What chat.postMessage / chat.update / chat.postEphemeral take: `text` is the notification fallback."""

    text: str
    blocks: list[dict[str, Any]]


# The lists render may shorten to fit, per kind: name (as the template's `more.<name>`) -> path.
# The first listed is shortened first when several are long.
SHRINKABLE: dict[MessageKind, dict[str, tuple[str, ...]]] = {
    MessageKind.PLAN_SUMMARY: {"signoffs": ("signoffs",)},
    MessageKind.PACKET_POSTED: {
        "forecast": ("forecast", "checkpoints"),
        "timeline": ("packet", "timeline"),
        "holds": ("packet", "holds"),
    },
    MessageKind.DELTA_DM: {"changes": ("changes",)},
    MessageKind.PACKET_PROPOSED_LINE: {"changes": ("changes",)},
    MessageKind.STATUS: {"holds": ("open_holds",), "gates": ("gates",)},
    MessageKind.HELP: {"usage": ("usage",)},
    MessageKind.HOME_VIEW: {
        "owned": ("owned",),
        "to_release": ("to_release",),
        "to_ack": ("to_ack",),
        "runs": ("runs",),
    },
}


def render(
    kind: MessageKind | str, data: Mapping[str, Any], *, limits: B.Limits = B.MESSAGE
) -> RenderedMessage:
    """The message of `kind` for `data`, redacted, within Slack's limits. Raises `RenderError`."""
    message_kind = _kind(kind)
    if message_kind is MessageKind.HOME_VIEW:
        raise RenderError("home_view is a view: use render_home")
    doc = _fit(message_kind, data, limits, check=lambda d: B.problems(d["blocks"], limits))
    text = doc.get("text")
    if not isinstance(text, str):
        raise RenderError(f"{message_kind}.j2 rendered no text")
    return RenderedMessage(text=B.clip(text, B.FALLBACK_TEXT_MAX), blocks=doc["blocks"])


def render_home(data: Mapping[str, Any], *, limits: B.Limits = B.HOME) -> dict[str, Any]:
    """The App Home view (`{"type": "home", "blocks": [...]}`) for views.publish."""
    return _fit(MessageKind.HOME_VIEW, data, limits, check=lambda d: B.view_problems(d, limits))


def _kind(kind: MessageKind | str) -> MessageKind:
    try:
        return MessageKind(kind)
    except ValueError as exc:
        raise RenderError(M.ERROR_UNKNOWN_KIND.format(kind=kind)) from exc


def _fit(
    kind: MessageKind,
    data: Mapping[str, Any],
    limits: B.Limits,
    *,
    check: Callable[[dict[str, Any]], list[str]],
) -> dict[str, Any]:
    lists = {
        name: path for name, path in SHRINKABLE.get(kind, {}).items() if isinstance(_get(data, path), list)
    }
    full = {name: len(_get(data, path)) for name, path in lists.items()}
    keep = dict(full)

    def attempt() -> tuple[dict[str, Any], list[str]]:
        shown = _with_lists(data, {lists[name]: keep[name] for name in lists})
        doc = _finish(_render_once(kind, shown, more={name: full[name] - keep[name] for name in full}))
        return doc, check(doc)

    doc, found = attempt()
    if not found:
        return doc
    for name in lists:
        # Keep as many items of this list as fit, the others as they are; the list that has to
        # go entirely is emptied and the next one shortened.
        keep[name] = 0
        best, still = attempt()
        if still:
            found = still
            continue
        fits, too_many = 0, full[name]
        while too_many - fits > 1:
            keep[name] = (fits + too_many) // 2
            candidate, problems = attempt()
            if problems:
                too_many = keep[name]
            else:
                fits, best = keep[name], candidate
        keep[name] = fits
        return best
    raise RenderError(M.ERROR_RENDER_LIMITS.format(problems="; ".join(found)))


def _render_once(kind: MessageKind, data: Mapping[str, Any], *, more: dict[str, int]) -> dict[str, Any]:
    try:
        text = environment().get_template(f"{kind.value}.j2").render(**data, more=more)
    except TemplateError as exc:
        raise RenderError(f"{kind}: {exc}") from exc
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise RenderError(f"{kind}: {type(exc).__name__}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(f"{kind}.j2 rendered invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("blocks"), list):
        raise RenderError(f"{kind}.j2 rendered no block list")
    cleaned: dict[str, Any] = _drop_nulls(doc)
    return cleaned


def _finish(doc: dict[str, Any]) -> dict[str, Any]:
    # Redact before clipping: a redaction marker may be longer than what it hides.
    redacted: dict[str, Any] = B.map_texts(doc, redact)
    redacted["blocks"] = B.enforce_limits(redacted["blocks"])
    return redacted


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items()}
    return value


def _get(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _with_lists(data: Mapping[str, Any], cuts: dict[tuple[str, ...], int]) -> dict[str, Any]:
    """A shallow copy of `data` with the list at each path cut to its first N items."""
    out = dict(data)
    for path, count in cuts.items():
        node = out
        for key in path[:-1]:
            node[key] = dict(node[key])
            node = node[key]
        node[path[-1]] = list(node[path[-1]])[:count]
    return out


# -- the Jinja2 environment ------------------------------------------------------------------

_USER_ID = re.compile(r"^[UWB][A-Z0-9]{1,30}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,30}$")


def escape_mrkdwn(value: Any) -> str:
    """Free text made inert in mrkdwn: `<!channel>` or `<http://x|y>` stay text (Slack's own escaping)."""
    return inert(value)


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _clock(value: Any) -> str:
    """`HH:MM` in the offset the time carries (the plan's), or a dash."""
    moment = _parse_time(value)
    return moment.strftime("%H:%M") if moment else M.NO_TIME


def _stamp(value: Any) -> str:
    moment = _parse_time(value)
    if moment is None:
        return M.NO_TIME
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if offset else ""
    return f"{moment:%Y-%m-%d %H:%M} {offset}".rstrip()


def _when(value: Any) -> str:
    """Slack's date formatting, so each reader sees their own zone; the plan's offset as fallback."""
    moment = _parse_time(value)
    if moment is None:
        return M.NO_TIME
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{_stamp(moment)}>"


def _mention(user: Any) -> str:
    if not user:
        return M.NOBODY
    return f"<@{user}>" if _USER_ID.match(str(user)) else escape_mrkdwn(user)


def _channel(channel: Any) -> str:
    return str(channel) if _CHANNEL_ID.match(str(channel or "")) else escape_mrkdwn(channel or "")


def _short(value: Any) -> str:
    return str(value or "")[:12]


def _roles(roles: Any) -> str:
    names = [escape_mrkdwn(r) for r in roles or []]
    return M.ROLE_SEPARATOR.join(names) if names else M.NOBODY


def _number(value: Any) -> str:
    if value is None:
        return M.GATE_NO_DATA
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _button(
    text: str, action: ActionId, value: str, *, style: str | None = None, confirm: str | None = None
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": str(action),
        "value": value,
        "text": {"type": "plain_text", "text": text, "emoji": True},
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = {
            "title": {"type": "plain_text", "text": M.CONFIRM_TITLE},
            "text": {"type": "plain_text", "text": confirm},
            "confirm": {"type": "plain_text", "text": M.CONFIRM_YES},
            "deny": {"type": "plain_text", "text": M.CONFIRM_NO},
        }
    return button


def _value(**fields: Any) -> str:
    return ButtonValue(**fields).encode()


def _count_summary(counts: Mapping[str, Any] | None) -> str:
    """'4 checkpoints moved, 1 held' from change counts, in a fixed order; zeros left out."""
    parts = []
    for key, one, many in M.PROPOSED_COUNTS:
        n = int((counts or {}).get(key) or 0)
        if n:
            parts.append((one if n == 1 else many).format(n=n))
    return ", ".join(parts) if parts else M.PROPOSED_NOTHING


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,  # a missing payload field is an error, not an empty string
        autoescape=False,  # the output is JSON, escaped by `tojson`, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(
        tojson=_tojson,
        esc=escape_mrkdwn,
        clock=_clock,
        stamp=_stamp,
        when=_when,
        mention=_mention,
        channel=_channel,
        short=_short,
        roles=_roles,
        number=_number,
        clip=B.clip,
    )
    env.globals.update(
        M=M,
        A=ActionId,
        button=_button,
        value=_value,
        count_summary=_count_summary,
        LINES_PER_SECTION=LINES_PER_SECTION,
        TITLE_MAX=TITLE_MAX,
        DETAIL_MAX=DETAIL_MAX,
    )
    return env
