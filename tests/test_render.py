"""Rendering: every message kind from a plain dict, checked by slack_sdk's Block Kit models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import blocks as B
from bot.ids import ActionId, ButtonValue, ButtonValueError
from bot.render import RenderedMessage, RenderError, render, render_home
from packets.messages import MessageKind

RUN = "r-payments-1"
REV = "9f2c" * 16
CARD = "4242 4242 4242 4242"


def checkpoint(i: int, **overrides: Any) -> dict[str, Any]:
    minute = i % 60
    data = {
        "id": f"cp-{i}",
        "title": f"Checkpoint {i}",
        "owner_role": "release-eng",
        "owner_user": "U0ENG1",
        "observer_roles": ["security"],
        "observer_users": ["U0SEC1"],
        "start": f"2026-11-24T21:{minute:02d}:00-05:00",
        "end": f"2026-11-24T22:{minute:02d}:00-05:00",
        "protected": False,
        "after": [],
        "held": False,
        "conflict": None,
        "waits_on": [],
        "status": "",
    }
    return {**data, **overrides}


def packet(
    *,
    version: int = 3,
    state: str = "proposed",
    checkpoints: int = 4,
    reason: str = "late report",
    holds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "version": version,
        "plan_revision": REV,
        "supersedes": version - 1 if version > 1 else None,
        "reason": reason,
        "timeline": [
            checkpoint(0, protected=True, held=True, conflict="cannot fit before 22:00"),
            *[checkpoint(i) for i in range(1, checkpoints)],
        ],
        "holds": holds
        if holds is not None
        else [
            {
                "checkpoint": "widen",
                "reason": "plan hold",
                "source": "plan",
                "release_by": ["release-authority"],
                "mode": "any",
            },
            {
                "checkpoint": "retire-legacy",
                "reason": "plan hold",
                "source": "plan",
                "release_by": ["release-authority", "payments-risk"],
                "mode": "all",
            },
        ],
        "state": state,
        "hash": "ab" * 32,
    }


SAMPLES: dict[MessageKind, dict[str, Any]] = {
    MessageKind.PLAN_SUMMARY: {
        "run": RUN,
        "plan": "payments-tokenization-cutover",
        "title": "Card-token lookups move",
        "revision": REV,
        "change_record": "CHG-20418",
        "checkpoints": 4,
        "window": {"start": "2026-11-24T21:00:00-05:00", "end": "2026-11-25T01:00:00-05:00"},
        "signoffs": [
            {"role": "release-authority", "acting": "U0REL1", "signed_by": None},
            {"role": "payments-risk", "acting": "U0RISK1", "signed_by": "U0RISK1"},
        ],
    },
    MessageKind.SIGNOFF_RECORDED: {
        "run": RUN,
        "revision": REV,
        "role": "payments-risk",
        "by": "U0RISK1",
        "remaining": ["release-authority"],
    },
    MessageKind.PACKET_POSTED: {"run": RUN, "packet": packet(), "summary": "4 checkpoints moved, 1 held"},
    MessageKind.PACKET_SUPERSEDED: {
        "run": RUN,
        "version": 2,
        "superseded_by": 3,
        "reason": "late report",
        "target": {"channel": "C0WARROOM", "ts": "1700000000.000100"},
    },
    MessageKind.PACKET_PROPOSED_LINE: {
        "run": RUN,
        "version": 3,
        "counts": {"moved": 4, "held": 1},
        "reason": "still draining",
        "by": "U0ENG1",
    },
    MessageKind.DELTA_DM: {
        "run": RUN,
        "version": 3,
        "from_version": 2,
        "channel": "C0WARROOM",
        "reason": "late report",
        "changes": [
            {
                "checkpoint": "canary-a",
                "title": "Shift merchant cohort A",
                "what": "moved",
                "old": "2026-11-24T21:15:00-05:00",
                "new": "2026-11-24T21:55:00-05:00",
                "detail": None,
            },
            {
                "checkpoint": "widen",
                "title": "Widen",
                "what": "owner_changed",
                "old": "U0REL1",
                "new": "U0REL2",
                "detail": None,
            },
            {
                "checkpoint": "key-replication",
                "title": "Key replication",
                "what": "conflict",
                "old": None,
                "new": None,
                "detail": "no longer fits before 22:00",
            },
        ],
    },
    MessageKind.HOLD_OPENED: {
        "run": RUN,
        "version": 3,
        "by": "U0ENG1",
        "hold": {
            "id": "h-9",
            "checkpoint": "canary-a",
            "reason": "latency spike",
            "source": "manual",
            "release_by": ["release-authority"],
            "mode": "any",
        },
    },
    MessageKind.HOLD_RELEASED: {
        "run": RUN,
        "hold": {"id": "h-retire", "checkpoint": "retire-legacy"},
        "by": "U0REL2",
        "as_role": "release-authority",
        "on_behalf_of": "U0REL1",
        "remaining": ["payments-risk"],
    },
    MessageKind.GATE_ALERT: {
        "run": RUN,
        "checkpoint": "canary-a",
        "gate": "lookup-latency-p95",
        "value": 0.31,
        "threshold": "<= 0.25",
        "outcome": "fail",
        "action": "hold",
        "at": "2026-11-24T21:35:00-05:00",
    },
    MessageKind.TRAFFIC_SHIFT: {
        "run": RUN,
        "checkpoint": "canary-a",
        "cohort": "merchant-a",
        "percent": 1,
        "previous_percent": 0,
    },
    MessageKind.RUN_STATE: {
        "run": RUN,
        "state": "paused",
        "previous": "running",
        "by": "U0ENG1",
        "reason": "waiting on the vault team",
    },
    MessageKind.ROLLBACK_REQUESTED: {
        "run": RUN,
        "rollback": "rb-1",
        "version": 3,
        "scope": "cohort",
        "cohort": "merchant-a",
        "reason": "auth errors",
        "by": "U0ENG1",
        "confirm_by": ["release-authority"],
    },
    MessageKind.EVIDENCE_FILE: {
        "run": "r-payments-1",
        "filename": "r-payments-1-evidence.md",
        "title": "Evidence: Card-token lookups move",
        "content": "# Evidence: Card-token lookups move\n",
    },
    MessageKind.MANIFEST_FILE: {
        "run": "r-payments-1",
        "filename": "r-payments-1-manifest-0a1b2c3d4e5f.json",
        "title": "Approval manifest: Card-token lookups move",
        "content": "{}\n",
        "hash": "0a1b2c3d4e5f" * 5 + "0a1b",
        "revision": "ab" * 32,
        "queue": "payments-prod-deploy",
    },
    MessageKind.EVIDENCE: {
        "run": RUN,
        "state": "completed",
        "ledger_ok": True,
        "ledger_head": "cd" * 32,
        "counts": {"packets": 3, "signoffs": 2, "holds": 2, "gates": 40, "rollbacks": 0},
        "location": "evidence/r-payments-1.json",
    },
    MessageKind.LEDGER_HEAD: {"run": RUN, "seq": 41, "hash": "ab" * 32},
    MessageKind.REFUSAL: {"reason": "v2 is superseded", "current_version": 3, "channel": "C0WARROOM"},
    MessageKind.REPLY: {"text": "Marked *key-replication* done.", "channel": "C0WARROOM"},
    MessageKind.STATUS: {
        "run": RUN,
        "state": "running",
        "version": 3,
        "next": {
            "title": "Shift merchant cohort A",
            "start": "2026-11-24T21:55:00-05:00",
            "owner_user": "U0ENG1",
        },
        "open_holds": [{"id": "h-widen", "checkpoint": "widen", "release_by": ["release-authority"]}],
        "gates": [{"gate": "auth-success", "outcome": "pass", "value": 0.998}],
    },
    MessageKind.HELP: {
        "usage": ["/cutover help", "/cutover status", "/cutover late CHECKPOINT UNTIL [reason]"]
    },
    MessageKind.USAGE: {
        "problem": "UNTIL must be HH:MM or +30m. Usage: /cutover late CHECKPOINT UNTIL [reason]"
    },
}

HOME = {
    "user": "U0REL1",
    "runs": [
        {
            "run": RUN,
            "title": "Card-token lookups move",
            "channel": "C0WARROOM",
            "version": 3,
            "state": "authoritative",
        }
    ],
    "owned": [
        {
            "run": RUN,
            "checkpoint": "widen",
            "title": "Widen",
            "start": "2026-11-24T22:30:00-05:00",
            "end": "2026-11-24T22:45:00-05:00",
            "status": "",
            "held": True,
        }
    ],
    "to_ack": [{"run": RUN, "version": 3, "reason": "late report"}],
    "to_release": [
        {"run": RUN, "hold": "h-widen", "checkpoint": "widen", "reason": "plan hold", "version": 3}
    ],
}


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    found += [b["accessory"] for b in blocks if b.get("accessory", {}).get("type") == "button"]
    return found


def all_text(message: Any) -> str:
    if isinstance(message, RenderedMessage):
        message = {"text": message.text, "blocks": message.blocks}
    return json.dumps(message, ensure_ascii=False)


def assert_valid(blocks: list[dict[str, Any]]) -> None:
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.to_dict()  # raises SlackObjectFormationError on any limit
    assert B.problems(blocks, B.MESSAGE) == []


# -- every kind ------------------------------------------------------------------------------


def test_there_is_a_sample_for_every_message_kind() -> None:
    assert set(SAMPLES) | {MessageKind.HOME_VIEW} == set(MessageKind)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_every_kind_renders_blocks_that_slack_sdk_accepts(kind: MessageKind) -> None:
    message = render(kind, SAMPLES[kind])

    assert message.text
    assert_valid(message.blocks)


def test_the_home_view_validates_as_a_slack_home_view() -> None:
    view = render_home(HOME)

    assert view["type"] == "home"
    View(**view).to_dict()
    assert {b["action_id"] for b in buttons(view["blocks"])} == {"release_hold", "acknowledge_packet"}


def test_an_empty_home_view_says_there_is_nothing_to_do() -> None:
    view = render_home({"user": "U0X", "runs": [], "owned": [], "to_ack": [], "to_release": []})

    View(**view).to_dict()
    assert "No active cutover involves you" in all_text(view)
    assert buttons(view["blocks"]) == []


# -- packets ---------------------------------------------------------------------------------


def test_a_proposed_packet_offers_adopt_and_reject_for_its_version_only() -> None:
    message = render(MessageKind.PACKET_POSTED, {"run": RUN, "packet": packet(version=3, state="proposed")})

    found = buttons(message.blocks)
    assert [b["action_id"] for b in found] == [ActionId.ADOPT_PACKET, ActionId.REJECT_PACKET]
    assert {ButtonValue.decode(b["value"]) for b in found} == {ButtonValue(run=RUN, v=3)}
    assert found[0]["text"]["text"] == "Adopt v3"
    assert "confirm" in found[0]


def test_an_authoritative_packet_offers_acknowledge_and_a_release_per_open_hold() -> None:
    run_holds = [
        {"id": "widen/plan/2", "checkpoint": "widen", "source": "plan", "open": True},
        {"id": "retire-legacy/plan/3", "checkpoint": "retire-legacy", "source": "plan", "open": False},
    ]
    data = {"run": RUN, "packet": packet(version=2, state="authoritative"), "run_holds": run_holds}

    found = buttons(render(MessageKind.PACKET_POSTED, data).blocks)

    assert sorted(b["action_id"] for b in found) == ["acknowledge_packet", "release_hold"]
    release = next(b for b in found if b["action_id"] == ActionId.RELEASE_HOLD)
    assert ButtonValue.decode(release["value"]) == ButtonValue(run=RUN, hold="widen/plan/2", v=2)


def test_a_packet_card_lists_an_open_hold_no_register_entry_planned_with_its_release_button() -> None:
    gate_hold = {
        "id": "canary/gate/4",
        "checkpoint": "canary",
        "source": "gate",
        "open": True,
        "reason": "gate auth-success failed",
        "release_by": ["release-authority"],
        "mode": "any",
    }
    data = {"run": RUN, "packet": packet(version=2, state="authoritative"), "run_holds": [gate_hold]}

    message = render(MessageKind.PACKET_POSTED, data)

    release = next(b for b in buttons(message.blocks) if b["action_id"] == ActionId.RELEASE_HOLD)
    assert ButtonValue.decode(release["value"]) == ButtonValue(run=RUN, hold="canary/gate/4", v=2)
    assert "`canary/gate/4` on *canary* · gate" in all_text(message.blocks)


def test_a_packet_card_offers_no_release_for_a_hold_not_yet_open() -> None:
    data = {"run": RUN, "packet": packet(version=2, state="authoritative"), "run_holds": []}

    message = render(MessageKind.PACKET_POSTED, data)

    assert [b["action_id"] for b in buttons(message.blocks)] == ["acknowledge_packet"]
    assert "A hold not yet open on *widen*" in all_text(message.blocks)


def test_the_packet_card_shows_times_owner_mentions_and_flags() -> None:
    message = render(MessageKind.PACKET_POSTED, {"run": RUN, "packet": packet()})
    text = all_text(message.blocks)

    assert "Command packet v3 · proposed" in text
    assert "`21:00–22:00` *Checkpoint 0* · <@U0ENG1> (release-eng)" in text
    assert ":lock: protected" in text and ":octagonal_sign: held" in text
    assert ":warning: conflict: cannot fit before 22:00" in text
    assert "supersedes v2" in text


def test_a_superseded_packet_says_by_which_version_and_has_no_buttons() -> None:
    message = render(MessageKind.PACKET_SUPERSEDED, SAMPLES[MessageKind.PACKET_SUPERSEDED])

    assert message.text == "Packet v2 superseded by v3"
    assert "superseded by *v3*" in all_text(message.blocks)
    assert buttons(message.blocks) == []


def test_the_proposed_line_counts_what_moved_and_what_is_held() -> None:
    message = render(MessageKind.PACKET_PROPOSED_LINE, SAMPLES[MessageKind.PACKET_PROPOSED_LINE])

    assert message.text == "v3 proposed: 4 checkpoints moved, 1 held"


def test_a_proposal_with_one_change_uses_the_singular() -> None:
    data = {**SAMPLES[MessageKind.PACKET_PROPOSED_LINE], "counts": {"moved": 1, "conflict": 2}}

    assert (
        render(MessageKind.PACKET_PROPOSED_LINE, data).text == "v3 proposed: 1 checkpoint moved, 2 conflicts"
    )


def test_a_two_hundred_checkpoint_packet_is_shortened_with_a_note_not_refused() -> None:
    data = {"run": RUN, "packet": packet(state="proposed", checkpoints=200)}

    message = render(MessageKind.PACKET_POSTED, data)

    assert_valid(message.blocks)
    assert len(message.blocks) <= 50
    text = all_text(message.blocks)
    shown = text.count("*Checkpoint ")
    assert 0 < shown < 200
    assert f"… {200 - shown} more checkpoints — see /cutover packet" in text
    # The decision stays possible: the buttons survive the shortening.
    assert [b["action_id"] for b in buttons(message.blocks)] == ["adopt_packet", "reject_packet"]


def test_a_compact_rendering_keeps_fewer_checkpoints_within_tighter_limits() -> None:
    data = {"run": RUN, "packet": packet(checkpoints=200)}

    normal = render(MessageKind.PACKET_POSTED, data)
    compact = render(MessageKind.PACKET_POSTED, data, limits=B.COMPACT)

    assert B.problems(compact.blocks, B.COMPACT) == []
    assert all_text(compact.blocks).count("*Checkpoint ") < all_text(normal.blocks).count("*Checkpoint ")


def test_a_packet_with_many_holds_shortens_its_hold_register_too() -> None:
    holds = [
        {
            "id": f"h-{i}",
            "checkpoint": f"cp-{i}",
            "reason": "x" * 200,
            "source": "gate",
            "release_by": ["release-authority"],
            "mode": "any",
        }
        for i in range(80)
    ]
    data = {"run": RUN, "packet": packet(state="authoritative", holds=holds)}

    message = render(MessageKind.PACKET_POSTED, data)

    assert_valid(message.blocks)
    assert "more holds — see /cutover packet" in all_text(message.blocks)


# -- limits, escaping, redaction -------------------------------------------------------------


def test_a_card_number_in_a_reason_never_reaches_slack() -> None:
    data = {"run": RUN, "packet": packet(reason=f"customer card {CARD} declined twice")}

    message = render(MessageKind.PACKET_POSTED, data)

    for shown in (message.text, all_text(message.blocks)):
        assert CARD not in shown and CARD.replace(" ", "") not in shown
        assert "4242" in shown  # the last four stay, to tell cards apart


def test_a_slack_token_in_a_refusal_is_redacted() -> None:
    message = render(MessageKind.REFUSAL, {"reason": "bad token xoxb-1234-5678-abcdefgh", "channel": "C1"})

    assert "xoxb-1234" not in all_text(message)


def test_free_text_cannot_mention_the_channel_or_forge_a_link() -> None:
    data = {"run": RUN, "packet": packet(reason="<!channel> see <https://evil.example|the runbook>")}

    message = render(MessageKind.PACKET_POSTED, data)

    text = all_text(message)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_an_overlong_reason_is_clipped_inside_its_section() -> None:
    message = render(MessageKind.REFUSAL, {"reason": "x" * 5000, "current_version": 3, "channel": "C1"})

    assert_valid(message.blocks)
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks if b["type"] == "section")


def test_an_overlong_role_keeps_its_sign_off_button_within_slack_limits() -> None:
    data = {
        **SAMPLES[MessageKind.PLAN_SUMMARY],
        "plan": "p" * 400,
        "signoffs": [{"role": "r" * 120, "acting": "U0REL1", "signed_by": None}],
    }

    message = render(MessageKind.PLAN_SUMMARY, data)

    assert_valid(message.blocks)
    (sign_off,) = buttons(message.blocks)
    assert len(sign_off["text"]["text"]) <= 75
    assert ButtonValue.decode(sign_off["value"]).role == "r" * 120
    assert len(message.blocks[0]["text"]["text"]) <= 150


def test_a_section_too_long_for_slack_is_cut_at_a_line_with_a_note() -> None:
    blocks = B.enforce_limits(
        [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(["y" * 99] * 50)}}]
    )

    text = blocks[0]["text"]["text"]
    assert len(text) <= 3000
    assert text.endswith("more lines — see /cutover packet")
    assert_valid(blocks)


# -- other kinds -----------------------------------------------------------------------------


def test_the_delta_dm_lists_only_the_given_changes_with_one_acknowledge_button() -> None:
    message = render(MessageKind.DELTA_DM, SAMPLES[MessageKind.DELTA_DM])
    text = all_text(message.blocks)

    assert message.text == "Packet v3 changes 3 of your checkpoints"
    assert "*Shift merchant cohort A* moved `21:15` → `21:55`" in text
    assert "*Widen* owner <@U0REL1> → <@U0REL2>" in text
    (ack,) = buttons(message.blocks)
    assert ack["action_id"] == ActionId.ACKNOWLEDGE_PACKET
    assert ButtonValue.decode(ack["value"]) == ButtonValue(run=RUN, v=3)


def test_a_plan_summary_has_a_sign_off_button_only_for_roles_not_yet_signed() -> None:
    message = render(MessageKind.PLAN_SUMMARY, SAMPLES[MessageKind.PLAN_SUMMARY])

    (sign_off,) = buttons(message.blocks)
    assert ButtonValue.decode(sign_off["value"]) == ButtonValue(run=RUN, rev=REV, role="release-authority")
    assert sign_off["text"]["text"] == "Sign off as release-authority"


def test_a_hold_release_names_the_role_and_on_whose_behalf() -> None:
    message = render(MessageKind.HOLD_RELEASED, SAMPLES[MessageKind.HOLD_RELEASED])
    text = all_text(message.blocks)

    assert "released by <@U0REL2> as *release-authority* on behalf of <@U0REL1>" in text
    assert "Still needed before it lifts: payments-risk" in text


def test_a_gate_alert_shows_value_threshold_and_action() -> None:
    text = all_text(render(MessageKind.GATE_ALERT, SAMPLES[MessageKind.GATE_ALERT]).blocks)

    assert "Gate lookup-latency-p95 failed" in text
    # `<` is escaped as Slack asks; Slack shows it as `<= 0.25`.
    assert "0.31" in text and "`&lt;= 0.25`" in text and "hold until a release" in text


def test_a_gate_without_data_says_so() -> None:
    data = {
        **SAMPLES[MessageKind.GATE_ALERT],
        "value": None,
        "outcome": "no_data",
        "reason": "prometheus down",
    }

    text = all_text(render(MessageKind.GATE_ALERT, data).blocks)

    assert "no data" in text and "prometheus down" in text


def test_a_refusal_names_the_current_version() -> None:
    message = render(MessageKind.REFUSAL, SAMPLES[MessageKind.REFUSAL])

    assert "The current packet is *v3*." in all_text(message.blocks)


def test_a_refused_traffic_shift_says_the_control_plane_refused() -> None:
    data = {**SAMPLES[MessageKind.TRAFFIC_SHIFT], "ok": False, "detail": "cohort locked"}

    assert "refused" in render(MessageKind.TRAFFIC_SHIFT, data).text


def test_a_missing_payload_field_is_a_render_error_naming_it() -> None:
    data = dict(SAMPLES[MessageKind.HOLD_OPENED])
    del data["hold"]

    with pytest.raises(RenderError, match="hold"):
        render(MessageKind.HOLD_OPENED, data)


def test_an_unknown_kind_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="unknown message kind"):
        render("carrier_pigeon", {})


# -- button values ---------------------------------------------------------------------------


def test_a_button_value_is_compact_json_and_round_trips() -> None:
    value = ButtonValue(run=RUN, hold="h-1", v=4)

    assert value.encode() == '{"hold":"h-1","run":"r-payments-1","v":4}'
    assert ButtonValue.decode(value.encode()) == value


def test_a_button_value_over_slacks_limit_is_refused_when_rendering() -> None:
    with pytest.raises(ButtonValueError):
        ButtonValue(run="r" * 2000, v=1).encode()


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"v": 3}', '{"run": "r", "v": "3"}', '{"run": "r", "x": 1}']
)
def test_a_button_value_not_rendered_by_the_bot_is_refused(text: str) -> None:
    with pytest.raises(ButtonValueError):
        ButtonValue.decode(text)


# -- any text a person may type --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(reason=st.text(max_size=400), title=st.text(min_size=1, max_size=200))
def test_any_reason_or_title_renders_to_blocks_slack_accepts(reason: str, title: str) -> None:
    data = {"run": RUN, "packet": {**packet(reason=reason), "timeline": [checkpoint(0, title=title)]}}

    message = render(MessageKind.PACKET_POSTED, data)

    assert_valid(message.blocks)
    assert "<!" not in all_text(message)  # no mention of @channel/@here can be typed in


ANSWERED = {"by": "U0REL1", "at": "2026-11-24T21:40:00-05:00", "detail": "by v4"}


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        (MessageKind.ROLLBACK_REQUESTED, "confirmed"),
        (MessageKind.ROLLBACK_REQUESTED, "outdated"),
        (MessageKind.PACKET_PROPOSED_LINE, "adopted"),
        (MessageKind.PACKET_PROPOSED_LINE, "replaced"),
        (MessageKind.DELTA_DM, "acknowledged"),
        (MessageKind.DELTA_DM, "outdated"),
    ],
)
def test_an_answered_message_says_who_did_what_when_without_buttons_and_validates(
    kind: MessageKind, state: str
) -> None:
    payload = {**SAMPLES[kind], "outcome": {**ANSWERED, "state": state}, "target_key": "k"}
    if kind is MessageKind.ROLLBACK_REQUESTED:
        payload["changes"] = [{"cohort": "merchant-a", "before": 25.0, "after": 5.0}]

    message = render(kind, payload)

    assert B.problems(message.blocks, B.MESSAGE) == []
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert '"button"' not in shown
    assert "<!date^" in shown  # each reader sees the time in their own zone
    if kind is not MessageKind.DELTA_DM:
        assert "<@U0REL1>" in shown and state in message.text
    if kind is MessageKind.ROLLBACK_REQUESTED:
        assert "merchant-a 25% → 5%" in shown


def test_a_delta_dm_counts_checkpoints_not_changes_and_says_moved_once() -> None:
    moved = {"what": "moved", "old": "2026-11-24T21:00:00-05:00", "new": "2026-11-24T21:15:00-05:00"}
    data = {
        **SAMPLES[MessageKind.DELTA_DM],
        "changes": [
            {"checkpoint": "canary", "title": "Canary", **moved, "detail": "+15 min"},
            {"checkpoint": "canary", "title": "Canary", "what": "hold_released"},
            {"checkpoint": "widen", "title": "Widen", **moved, "detail": "+15 min"},
        ],
    }

    message = render(MessageKind.DELTA_DM, data)

    assert "changes 2 of your checkpoints" in message.text
    shown = json.dumps(message.blocks)
    assert "moved moved" not in shown and "hold_released" not in shown and "hold released" in shown


def test_the_run_card_shows_the_run_now_under_its_sign_offs() -> None:
    data = {
        **SAMPLES[MessageKind.PLAN_SUMMARY],
        "target_key": "plan",
        "state": "held",
        "live": ["Now: *Canary* (held), owner <@U0ENG1>, planned 21:40–22:00.", "Traffic: merchant-a 5%."],
    }

    message = render(MessageKind.PLAN_SUMMARY, data)

    assert message.text.endswith("the run is held")
    shown = json.dumps(message.blocks)
    assert "The run is held." in shown and "Traffic: merchant-a 5%." in shown


def test_a_state_line_names_its_checkpoint_in_words_and_keeps_bookkeeping_out() -> None:
    from packets.messages import RunStateLine

    line = RunStateLine.line(
        "checkpoint started",
        {
            "checkpoint": "key-replication",
            "title": "Key replication confirmed",
            "attempt": 1,
            "soak_until": "2026-12-02T13:56:07.663125+00:00",
            "by": "engine",
        },
    )
    message = render(MessageKind.RUN_STATE, {"run": "r1", **line.as_json()})

    assert message.text == "Run r1: checkpoint started: Key replication confirmed (key-replication)"
    shown = json.dumps(message.blocks)
    for leak in ("soak_until", "attempt", "2026-12-02T13:56", "Why:", "engine"):
        assert leak not in shown and leak not in message.text, leak
    again = RunStateLine.line("checkpoint started", {"checkpoint": "canary", "attempt": 2})
    assert again.reason == "checkpoint canary; attempt 2"
    ended = RunStateLine.line("rolled back", {"why": "parity drift", "checkpoints_done": 1, "by": "U0REL1"})
    assert (ended.reason, ended.by) == ("parity drift; 1 checkpoint done", "U0REL1")


def test_a_checkpoint_that_only_ends_later_shows_its_end_old_to_new_not_its_unchanged_start() -> None:
    from datetime import datetime, timedelta, timezone

    from handlers.notices import change_rows
    from packets.delta import Change
    from packets.packet import PlannedCheckpoint

    # The packet's times carry the plan window's offset; the line shows them in it.
    start = datetime(2026, 11, 24, 21, 15, tzinfo=timezone(timedelta(hours=-5)))

    def planned(end: datetime) -> PlannedCheckpoint:
        return PlannedCheckpoint(
            id="canary", title="Canary", owner_role="eng", owner_user="U0ENG1", observer_roles=(),
            observer_users=(), start=start, end=end, protected=False,
        )  # fmt: skip

    old, new = planned(start + timedelta(minutes=10)), planned(start + timedelta(minutes=25))
    change = Change(
        checkpoint="canary", title="Canary", moved_by=timedelta(0), end_moved_by=timedelta(minutes=15),
        reordered=False, owner_changed=None, hold_added=False, hold_released=False, conflict_added=None,
        conflict_cleared=False, material=True, principals=("U0ENG1",), shifted=True, old=old, new=new,
    )  # fmt: skip

    [row] = change_rows((change,))
    payload = {**SAMPLES[MessageKind.DELTA_DM], "changes": [row]}
    shown = json.dumps(render(MessageKind.DELTA_DM, payload).blocks, ensure_ascii=False)

    assert row["what"] == "end_moved"
    assert "*Canary* end moved `21:25` → `21:40`: +15 min" in shown, shown
