"""FileTelemetry: a YAML/JSON file of gate name -> value, re-read at every reading."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.telemetry.file import FileTelemetry
from handlers.ports import Measurement

AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def read(path: Path, gate: str = "auth-success") -> Measurement:
    return await FileTelemetry(path).measure(gate=gate, query="ignored", at=AT)


async def test_a_number_in_the_file_is_the_gate_value(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("auth-success: 0.998\nlookup-latency-p95: 0.18\n")

    assert await read(path) == Measurement(0.998, "")
    assert await read(path, "lookup-latency-p95") == Measurement(0.18, "")


async def test_a_json_file_works_the_same(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.json"
    path.write_text('{"auth-success": 1, "fallback-health": 0}')

    assert await read(path) == Measurement(1.0, "")
    assert await read(path, "fallback-health") == Measurement(0.0, "")


async def test_the_file_is_read_again_at_every_reading(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    telemetry = FileTelemetry(path)
    path.write_text("auth-success: 0.999\n")
    first = await telemetry.measure(gate="auth-success", query="", at=AT)
    path.write_text("auth-success: 0.95\n")
    second = await telemetry.measure(gate="auth-success", query="", at=AT)

    assert (first.value, second.value) == (0.999, 0.95)


async def test_null_is_no_data_said_by_the_file(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("auth-success: null\n")

    assert await read(path) == Measurement(None, f"telemetry file {path} says no data for auth-success")


async def test_a_gate_missing_from_the_file_is_no_data(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("settlement-parity: 1\n")

    assert await read(path) == Measurement(None, f"gate auth-success is not in telemetry file {path}")


async def test_a_missing_file_is_no_data(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    assert await read(path) == Measurement(None, f"telemetry file {path} does not exist")


async def test_a_directory_instead_of_a_file_is_no_data(tmp_path: Path) -> None:
    reading = await read(tmp_path)

    assert reading.value is None
    assert reading.reason.startswith(f"telemetry file {tmp_path} cannot be read")


async def test_text_where_a_number_belongs_is_no_data(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("auth-success: healthy\n")

    assert await read(path) == Measurement(
        None, f"value for auth-success in {path} is not a number: 'healthy'"
    )


async def test_true_is_not_taken_for_one(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("auth-success: true\n")

    assert (await read(path)).value is None


async def test_nan_and_infinity_are_no_data(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("auth-success: .nan\nlookup-latency-p95: .inf\n")

    assert (await read(path)).value is None
    assert "finite number" in (await read(path, "lookup-latency-p95")).reason


async def test_a_file_that_is_not_a_mapping_is_no_data(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("- 0.999\n")

    assert await read(path) == Measurement(None, f"telemetry file {path} must map gate names to values")


async def test_broken_yaml_is_no_data_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text("auth-success: 0.999\nlookup: [0.1\n")

    reading = await read(path)

    assert reading.value is None
    assert reading.reason.startswith(f"telemetry file {path} is not valid YAML/JSON at line")
