"""`roombot audit` shows approvals (DESIGN §2.12): who asked, who approved or denied, the times."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from bot.audit import NewEntry, Outcome, RequestState, open_store
from bot.cli import main
from tests.bot.requestkit import new_request


def _populate(path: Path) -> None:
    async def populate() -> None:
        async with await open_store(path) as store:
            assert await store.record_request(
                new_request("asked", waiting=RequestState.AWAITING_APPROVAL, expires_at=4e9)
            )
            ended = await store.decline_waiting("asked", by="U0BOB0001", note="not now")
            assert ended is not None
            await store.record(
                [
                    NewEntry(
                        request_key="asked",
                        source="slash",
                        user_id="U111",
                        verb="mute-all",
                        raw_text="mute-all room-1",
                        room_id="room-1",
                        outcome=Outcome.DENIED,
                    )
                ]
            )

    asyncio.run(populate())


def test_roombot_audit_shows_who_asked_and_who_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "audit.sqlite3"
    _populate(db)
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(db))
    assert main(["audit", "--format", "jsonl"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    approval = json.loads(line)["approval"]
    assert approval.startswith("asked by U111 at ")
    assert "; denied by U0BOB0001 at " in approval
    assert approval.endswith("Z: not now")
    assert main(["audit"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split()[-1] == "approval"
    assert "denied by U0BOB0001" in row
    assert main(["audit", "--format", "csv"]) == 0
    [parsed] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert parsed["approval"] == approval
