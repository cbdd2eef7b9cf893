"""Reading the trail back: `--since` values and the table, JSON Lines and CSV renderings."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.audit import NO_ENTRIES, AuditEntry, Outcome, format_entries, parse_since

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _entry(**overrides: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "id": 7,
        "created_at": NOW,
        "finished_at": NOW + 0.25,
        "request_key": "req-7",
        "source": "slash",
        "user_id": "U111",
        "verb": "mute-all",
        "raw_text": "/room mute-all room-1 reason: spam",
        "room_id": "room-1",
        "team_id": "T1",
        "channel_id": "C1",
        "reason": "spam",
        "patch": {"IsAudioDisabled": True},
        "previous": {"IsAudioDisabled": False},
        "outcome": Outcome.OK,
        "detail": None,
        "undo_of": None,
        "error_code": None,
        "error_info": None,
        "tencent_request_id": "Id-8c9858f01e954611ae2d4c1b1ed7d583-O-Seq-52720",
        "latency_ms": 187.4,
    }
    values.update(overrides)
    return AuditEntry(**values)


# -- parse_since --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1_800),
        ("24h", 86_400),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("0h", 0),
        (" 24H ", 86_400),
    ],
)
def test_since_ages(text: str, seconds: int) -> None:
    assert parse_since(text, now=NOW) == NOW - seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:30", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T14:30:00+02:00", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_since_iso_dates_are_utc_unless_they_say_otherwise(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected.timestamp()


@pytest.mark.parametrize(
    "text", ["", "24", "h", "-5m", "1.5h", "24 hours", "3y", "yesterday", "2024-13-01"]
)
def test_bad_since_is_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected an age like 90s.*ISO date") as info:
        parse_since(text, now=NOW)
    assert "\n" not in str(info.value)
    assert repr(text) in str(info.value)


# -- table --------------------------------------------------------------------------------------


def test_table_has_a_header_and_one_aligned_line_per_entry() -> None:
    failed = _entry(
        id=8,
        outcome=Outcome.FAILED,
        error_code=100004,
        tencent_request_id="Id-2",
        latency_ms=5.0,
        room_id="r2",
        user_id="U222",
        source="mention",
    )
    lines = format_entries([_entry(), failed], "table").splitlines()
    assert len(lines) == 3
    header, ok_line, failed_line = lines
    for name in ("time", "user", "source", "verb", "room", "outcome", "code", "request id", "ms"):
        assert name in header
    assert ok_line.split() == [
        "2023-11-14T22:13:20Z",
        "U111",
        "slash",
        "mute-all",
        "room-1",
        "ok",
        "Id-8c9858f01e954611ae2d4c1b1ed7d583-O-Seq-52720",
        "187",
    ]
    assert failed_line.split() == [
        "2023-11-14T22:13:20Z",
        "U222",
        "mention",
        "mute-all",
        "r2",
        "failed",
        "100004",
        "Id-2",
        "5",
    ]
    # Fixed width: each column starts at the same offset on every line.
    for column in ("outcome", "request id"):
        start = header.index(column)
        assert ok_line[start:].startswith("ok" if column == "outcome" else "Id-8c98")
        assert failed_line[start:].startswith("failed" if column == "outcome" else "Id-2")


def test_table_cuts_long_cells_and_keeps_one_line_per_entry() -> None:
    long_room = "r" * 48
    text = format_entries(
        [_entry(room_id=long_room, verb="set\nname", tencent_request_id="x" * 80)], "table"
    )
    lines = text.splitlines()
    assert len(lines) == 2
    assert long_room not in text
    assert "r" * 23 + "…" in lines[1]
    assert "x" * 47 + "…" in lines[1]
    assert "set name" in lines[1]


def test_table_with_no_entries_says_so() -> None:
    assert format_entries([], "table") == NO_ENTRIES


def test_table_shows_pending_and_missing_values_as_blank() -> None:
    pending = _entry(
        outcome=Outcome.PENDING,
        finished_at=None,
        tencent_request_id=None,
        latency_ms=None,
        verb=None,
        room_id=None,
    )
    line = format_entries([pending], "table").splitlines()[1]
    assert line.split() == ["2023-11-14T22:13:20Z", "U111", "slash", "pending"]


# -- jsonl and csv ------------------------------------------------------------------------------

# Every field of the row, then who asked and who decided (empty for these rows).
_FIELDS = [*(f.name for f in fields(AuditEntry)), "approval"]


def test_jsonl_is_one_object_per_entry_with_every_field() -> None:
    entries = [_entry(), _entry(id=8, finished_at=None, outcome=Outcome.UNKNOWN, patch=None)]
    lines = format_entries(entries, "jsonl").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first) == _FIELDS
    assert first["id"] == 7
    assert first["created_at"] == "2023-11-14T22:13:20.000Z"
    assert first["finished_at"] == "2023-11-14T22:13:20.250Z"
    assert first["outcome"] == "ok"
    assert first["patch"] == {"IsAudioDisabled": True}
    assert first["previous"] == {"IsAudioDisabled": False}
    assert first["latency_ms"] == 187.4
    assert first["raw_text"] == "/room mute-all room-1 reason: spam"
    assert (second["finished_at"], second["outcome"], second["patch"]) == (None, "unknown", None)


def test_jsonl_with_no_entries_is_empty() -> None:
    assert format_entries([], "jsonl") == ""


def test_csv_has_a_header_and_survives_awkward_text() -> None:
    awkward = _entry(raw_text='/room rename r1 "a, b"\nsecond line', detail='why, "quoted"')
    text = format_entries([awkward, _entry(id=8, error_code=100004)], "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2
    assert list(rows[0]) == _FIELDS
    assert rows[0]["raw_text"] == '/room rename r1 "a, b"\nsecond line'
    assert rows[0]["detail"] == 'why, "quoted"'
    assert json.loads(rows[0]["patch"]) == {"IsAudioDisabled": True}
    assert rows[0]["created_at"] == "2023-11-14T22:13:20.000Z"
    assert rows[0]["error_code"] == ""
    assert rows[1]["error_code"] == "100004"
    assert rows[1]["id"] == "8"


def test_csv_with_no_entries_is_empty() -> None:
    assert format_entries([], "csv") == ""


def test_an_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="yaml"):
        format_entries([_entry()], "yaml")


def test_the_csv_detail_is_plain_text_without_slack_markup() -> None:
    """Issue 27, item 10: the CSV detail carried Slack markup (`<#C123|general>`, code spans)."""
    detail = (
        "`<#C123|general>`: that looks like a Slack mention, not a room ID; ask <@U0BOB|bob> "
        "or <!subteam^S0OPS|@ops>, see <https://example.com/runbook|the runbook>"
    )
    text = format_entries([_entry(detail=detail, outcome=Outcome.INVALID)], "csv")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["detail"] == (
        "'#general (C123)': that looks like a Slack mention, not a room ID; ask @bob (U0BOB) "
        "or @ops, see the runbook (https://example.com/runbook)"
    )
    assert "<" not in row["detail"]
    assert "`" not in row["detail"]
