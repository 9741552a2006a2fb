"""The witness outside the database: its file format, what it posts, what Slack metadata it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from packets.witness import (
    EVENT_TYPE,
    WitnessedHead,
    WitnessInvalid,
    from_message,
    heads_to_post,
    message_metadata,
    parse_lines,
    to_line,
)

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
H = "ab" * 32


def test_a_witness_file_is_json_lines_of_run_seq_and_hash() -> None:
    heads = [WitnessedHead("r-1", 3, H), WitnessedHead("r-2", 9, "cd" * 32)]
    text = "".join(to_line(h) + "\n" for h in heads)
    assert to_line(heads[0]) == f'{{"hash":"{H}","run":"r-1","seq":3}}'
    assert parse_lines(text + "\n") == heads


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "line 2 is not JSON"),
        ('{"run": "r-1", "seq": 3}', "line 2 has no hash"),
        ('{"run": "r-1", "seq": "3", "hash": "' + H + '"}', "line 2: seq must be a whole number"),
        ('{"run": "r-1", "seq": 3, "hash": "abc"}', "line 2: hash must be 64 hex digits"),
        ('{"run": "", "seq": 3, "hash": "' + H + '"}', "line 2: run must be a run id"),
    ],
)
def test_a_malformed_witness_line_is_refused_naming_its_line(line: str, why: str) -> None:
    with pytest.raises(WitnessInvalid, match=why):
        parse_lines(to_line(WitnessedHead("r-1", 1, H)) + "\n" + line + "\n")


def test_heads_are_posted_at_most_once_per_ten_seconds_and_always_at_the_end() -> None:
    at = [T0, T0 + timedelta(seconds=3), T0 + timedelta(seconds=10), T0 + timedelta(seconds=12)]
    entries = [(seq, when, f"{seq:064x}") for seq, when in enumerate(at, start=1)]
    posted = heads_to_post("r-1", entries)
    assert [h.seq for h in posted] == [1, 3, 4]
    assert posted[-1] == WitnessedHead("r-1", 4, f"{4:064x}")
    assert heads_to_post("r-1", []) == []


def test_the_head_travels_as_slack_message_metadata_and_comes_back() -> None:
    head = WitnessedHead("r-1", 7, H)
    metadata = message_metadata(head)
    assert metadata == {"event_type": EVENT_TYPE, "event_payload": {"run": "r-1", "seq": 7, "hash": H}}
    assert from_message({"ts": "1.0", "text": "x", "metadata": metadata}) == head


@pytest.mark.parametrize(
    "message",
    [
        {"ts": "1.0", "text": "no metadata"},
        {"metadata": {"event_type": "something_else", "event_payload": {"run": "r-1", "seq": 1, "hash": H}}},
        {"metadata": {"event_type": EVENT_TYPE, "event_payload": {"run": "r-1", "seq": 1, "hash": "short"}}},
        {"metadata": {"event_type": EVENT_TYPE, "event_payload": "not a dict"}},
    ],
)
def test_messages_without_a_well_formed_head_are_not_witnesses(message: dict[str, object]) -> None:
    assert from_message(message) is None
