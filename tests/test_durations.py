"""Durations as people type them: `15m`, `1h30m`, `90s`, `2d`, and the shortest form back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packets.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2d", timedelta(days=2)),
        ("0", timedelta(0)),
        ("0m", timedelta(0)),
        (" 1H 30M ", timedelta(hours=1, minutes=30)),
        ("30m1h", timedelta(hours=1, minutes=30)),
        ("72h", timedelta(hours=72)),
    ],
)
def test_a_duration_reads_as_people_write_it(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "m", "1.5h", "-5m", "15 minutes", "1w", "h1", "+30m", "∞"])
def test_anything_else_is_a_duration_error_naming_the_text(text: str) -> None:
    with pytest.raises(DurationError) as refused:
        parse_duration(text)
    assert repr(text) in str(refused.value)


def test_a_duration_error_is_a_value_error_so_pydantic_reports_it() -> None:
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0m"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=59), "59s"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(hours=72), "3d"),
        (timedelta(minutes=-20), "-20m"),
    ],
)
def test_a_duration_is_written_in_its_shortest_form(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.integers(min_value=0, max_value=400 * 86400))
def test_formatting_then_parsing_gives_the_same_whole_seconds(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.integers(min_value=1, max_value=400 * 86400))
def test_a_negative_duration_is_the_positive_one_with_a_minus(seconds: int) -> None:
    assert format_duration(-timedelta(seconds=seconds)) == "-" + format_duration(timedelta(seconds=seconds))
