"""Rendering outcomes for Slack: content, escaping, and Block Kit limits for big requests."""

from __future__ import annotations

import json

from bot import wording
from bot.commands import parse_command
from bot.outcomes import (
    Actor,
    DryRun,
    Failure,
    FailureKind,
    RoomResult,
    RunResult,
    Source,
)
from handlers import blocks
from handlers.blocks import SLACK

ALICE = Actor(user_id="U0ALICE01", source=Source.SLASH, channel_id="C0GENERAL1")


def _run(text: str, results: list[RoomResult]) -> RunResult:
    return RunResult(command=parse_command(text), actor=ALICE, request_key="k1", results=results)


def _fail(code: int, hint: str = "room does not exist or was destroyed — check the ID") -> Failure:
    return Failure(
        kind=FailureKind.API, message="room not exist", hint=hint, code=code, request_id="Id-fail-1"
    )


def test_parent_names_requester_verb_rooms_and_reason() -> None:
    command = parse_command("mute-all room-a room-b --reason 'abuse <!channel> report'")
    message = blocks.parent_message(command, ALICE)
    assert "<@U0ALICE01>" in message.text
    assert "`/room mute-all`" in message.text
    assert "`room-a`" in message.text
    assert "`room-b`" in message.text
    assert "abuse &lt;!channel&gt; report" in message.text  # cannot ping the channel
    assert "<!channel>" not in json.dumps(message.blocks)


def test_result_lines_carry_marks_changes_codes_hints_and_request_ids() -> None:
    run = _run(
        "mute-all room-a room-b",
        [
            RoomResult(room_id="room-a", changes={"IsAudioDisabled": True}, request_id="Id-ok-1"),
            RoomResult(room_id="room-b", changes={"IsAudioDisabled": True}, failure=_fail(100004)),
        ],
    )
    [message] = blocks.result_messages(run)
    text = message.text
    assert "✅ `room-a` — audio muted · RequestId `Id-ok-1`" in text
    assert "❌ `room-b` — error 100004" in text
    assert "check the ID" in text
    assert "RequestId `Id-fail-1`" in text
    # room-a was not read first, so it is "set", not claimed as "changed"
    assert wording.final_status(run) == "⚠️ partly done: 1/2 rooms set, 1 failed"


def test_failure_without_request_id_says_so() -> None:
    failure = Failure(
        kind=FailureKind.TIMEOUT, message="Room Engine did not answer in time", hint="retry"
    )
    line = blocks.room_line(
        RoomResult(room_id="r", changes={"IsAudioDisabled": True}, failure=failure)
    )
    assert "no RequestId" in line


def test_describe_every_field() -> None:
    assert wording.describe_change(SLACK, "IsVideoDisabled", False) == "video enabled"
    assert wording.describe_change(SLACK, "IsMessageDisabled", True) == "chat disabled"
    assert (
        wording.describe_change(SLACK, "IsScreenSharingDisabled", True) == "screen sharing disabled"
    )
    assert (
        wording.describe_change(SLACK, "IsCloudRecordingDisabled", False)
        == "cloud recording enabled"
    )
    assert (
        wording.describe_change(SLACK, "RoomName", "War <room>") == "renamed to “War &lt;room&gt;”"
    )
    assert wording.describe_change(SLACK, "MaxMemberCount", 300) == "member limit set to 300"
    assert (
        wording.describe_change(SLACK, "TakeSeatMode", "ApplyToTake")
        == "seat mode set to apply (mic on request)"
    )
    assert wording.describe_change(SLACK, "CustomInfo", "x`y") == "custom info set to `xˋy`"


def test_many_rooms_fit_block_kit_limits_and_list_every_room() -> None:
    rooms = [f"room-{i:03d}-with-a-fairly-long-identifier" for i in range(300)]
    results = [
        RoomResult(
            room_id=r,
            changes={"IsAudioDisabled": True},
            request_id=f"Id-{i:032x}-O-Seq-{i}",
            failure=_fail(100001, "internal error, retried") if i % 7 == 0 else None,
        )
        for i, r in enumerate(rooms)
    ]
    run = _run("mute-all " + " ".join(rooms), results)
    messages = blocks.result_messages(run)
    sections = [b for m in messages for b in m.blocks if b["type"] == "section"]
    everything = "\n".join(b["text"]["text"] for b in sections)
    for room in rooms:
        assert f"`{room}`" in everything
    for message in messages:
        assert len(message.blocks) <= blocks.MAX_BLOCKS
        assert len(message.text) <= 4000
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= blocks.MAX_SECTION_CHARS
    # failures are listed first, so they are never lost in the tail of a long list
    first_lines = messages[0].blocks[1]["text"]["text"].splitlines()
    assert first_lines[0].startswith("❌")
    # the Retry button sits on the last message, after every room line
    [actions] = [b for b in messages[-1].blocks if b["type"] == "actions"]
    [retry] = actions["elements"]
    assert retry["action_id"] == blocks.ACTION_RETRY
    assert retry["value"] == "k1"
    assert retry["text"]["text"] == "Retry 43 failed"


def test_dry_run_shows_exact_bodies() -> None:
    command = parse_command("set room-a audio=off name='Town hall' --dry-run")
    dry = DryRun(command=command, bodies=tuple(p.body() for p in command.patches()))
    message = blocks.dry_run_message(dry)
    body = json.dumps(command.patches()[0].body(), ensure_ascii=False)
    assert body in message.text
    assert "nothing was sent" in message.text


def test_show_renders_every_setting_plainly() -> None:
    from bot.models import RoomInfo, RoomSnapshot
    from bot.outcomes import RoomView

    room = RoomInfo.model_validate(
        {
            "RoomId": "room-test",
            "RoomName": "Town <hall>",
            "Owner_Account": "host-1",
            "RoomStatus": "Running",
            "MemberCount": 12,
            "MaxMemberCount": 300,
            "TakeSeatMode": "None",
            "IsAudioDisabled": True,
            "IsScreenSharingDisabled": True,
            "CustomInfo": "tier=gold",
        }
    )
    text = blocks.room_view_text(
        RoomView(room_id="room-test", snapshot=RoomSnapshot(room=room, request_id="Id-1"))
    )
    assert "*Town &lt;hall&gt;* (`room-test`) — owner `host-1`, status Running" in text
    assert "members 12/300 · seat mode not set" in text
    assert "audio ⛔ muted · video on · chat on · screen sharing ⛔ disabled · recording on" in text
    assert "custom info: `tier=gold`" in text
    assert "RequestId `Id-1`" in text


def test_retry_is_offered_only_for_what_may_succeed_if_tried_again() -> None:
    """Issue 27, item 10: Retry was offered for permanent errors like 100004."""
    gone = RoomResult(room_id="ghost", changes={"IsAudioDisabled": True}, failure=_fail(100004))
    busy = RoomResult(room_id="busy", changes={"IsAudioDisabled": True}, failure=_fail(100001))
    assert blocks.result_actions(_run("mute-all ghost", [gone])) is None
    actions = blocks.result_actions(_run("mute-all ghost busy", [gone, busy]))
    assert actions is not None
    [retry] = actions["elements"]
    assert retry["text"]["text"] == "Retry 1 failed"


def test_one_history_entry_is_an_entry() -> None:
    from bot.audit import AuditEntry, Outcome
    from bot.outcomes import HistoryView

    entry = AuditEntry(
        id=1,
        created_at=1_700_000_000.0,
        finished_at=None,
        request_key="k",
        source="slash",
        user_id="U0ALICE01",
        verb="mute-all",
        raw_text="mute-all room-test",
        room_id="room-test",
        team_id=None,
        channel_id=None,
        reason=None,
        patch={"IsAudioDisabled": True},
        previous=None,
        outcome=Outcome.OK,
        detail=None,
        undo_of=None,
        error_code=None,
        error_info=None,
        tencent_request_id=None,
        latency_ms=None,
    )
    text = blocks.history_message(HistoryView(room_id="room-test", entries=(entry,))).text
    assert text.startswith("Last audit entry for `room-test`:")
