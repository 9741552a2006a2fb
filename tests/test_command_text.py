"""The `/cutover` grammar: every subcommand, its usage line when malformed, and time resolution."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.command_text import USAGE, Parsed, Usage, parse
from packets.durations import TimeOfDay, resolve_time

EST = timezone(timedelta(hours=-5))


def test_an_empty_command_is_help() -> None:
    assert parse("   ").name == "help"


def test_a_late_report_reads_checkpoint_until_and_reason() -> None:
    parsed = parse("late rollback-validation +40m still draining")
    assert parsed == Parsed(
        name="late", checkpoint="rollback-validation", until=timedelta(minutes=40), reason="still draining"
    )


def test_a_late_report_until_a_clock_time_is_a_time_of_day() -> None:
    assert parse("late key-replication 23:40").until == TimeOfDay(23, 40)


def test_a_delegate_mention_as_slack_escapes_it_names_the_user() -> None:
    assert parse("delegate security <@U0SEC2|sam>").user == "U0SEC2"
    assert parse("delegate security @U0SEC2").user == "U0SEC2"


def test_a_window_reads_both_ends() -> None:
    assert parse("window db-replication 00:00-00:30").window == (TimeOfDay(0, 0), TimeOfDay(0, 30))


def test_a_rollback_defaults_to_the_current_cohort_and_needs_a_reason() -> None:
    assert parse("rollback latency too high").scope == "cohort"
    assert parse("rollback all error budget gone").scope == "all"
    with pytest.raises(Usage, match="reason is required"):
        parse("rollback all")


def test_a_release_takes_a_hold_id_as_the_bot_prints_it() -> None:
    assert parse("release canary-a/gate/2").checkpoint == "canary-a/gate/2"


def test_versions_are_read_with_or_without_the_v() -> None:
    assert parse("adopt v3").version == 3
    assert parse("ack 4").version == 4
    assert parse("acknowledge").name == "ack"


@pytest.mark.parametrize(
    ("text", "subcommand"),
    [
        ("late key-replication", "late"),
        ("late key-replication tomorrow", "late"),
        ("window db-replication 22:00", "window"),
        ("delegate security bob", "delegate"),
        ("hold", "hold"),
        ("ledger 1000", "ledger"),
        ("open ../../etc/passwd", "open"),
        ("done", "done"),
        ("adopt version-three", "adopt"),
        ("packet v2 v3", "packet"),
        ("packet latest", "packet"),
    ],
)
def test_a_malformed_subcommand_gets_its_own_usage_line(text: str, subcommand: str) -> None:
    with pytest.raises(Usage) as refused:
        parse(text)
    assert refused.value.subcommand == subcommand
    assert USAGE[subcommand] in refused.value.line


def test_an_unknown_subcommand_points_at_help() -> None:
    with pytest.raises(Usage, match="Try /cutover help"):
        parse("deploy everything")


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_parses_or_gets_a_usage_line_and_nothing_else(text: str) -> None:
    try:
        parsed = parse(text)
    except Usage as usage:
        assert usage.line and "Traceback" not in usage.line
    else:
        assert parsed.name in USAGE


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(USAGE)), st.lists(st.text(max_size=40), max_size=6))
def test_every_subcommand_with_garbage_arguments_parses_or_gets_its_usage(name: str, args: list[str]) -> None:
    try:
        parse(" ".join([name, *args]))
    except Usage as usage:
        assert usage.subcommand in (name, None)


def test_a_clock_time_just_after_midnight_typed_late_in_the_evening_means_tomorrow() -> None:
    now = datetime(2026, 11, 24, 23, 10, tzinfo=EST)
    assert resolve_time(TimeOfDay(0, 30), now=now, tz_of=now) == datetime(2026, 11, 25, 0, 30, tzinfo=EST)


def test_a_relative_time_counts_from_now() -> None:
    now = datetime(2026, 11, 24, 21, 0, tzinfo=EST)
    assert resolve_time(timedelta(minutes=30), now=now, tz_of=now) == now + timedelta(minutes=30)


def test_packet_takes_an_optional_version() -> None:
    assert (parse("packet").version, parse("packet v4").version, parse("packet 4").version) == (None, 4, 4)
