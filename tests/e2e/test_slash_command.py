"""`/room` end to end: signed requests to the real HTTP endpoint, a fake Slack, the emulator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.stack import ALICE, GENERAL, MALLORY, SIGNING_SECRET, running_stack


def _texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages)


async def test_mute_all_acks_fast_sends_partial_patch_and_threads_the_result(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        reply, key = await stack.slash("mute-all room-test --reason 'abuse report'")
        assert reply.status == 200
        assert reply.elapsed_s < 3.0
        assert reply.json() == {}  # an empty ack: the channel gets the parent message instead
        await stack.settle()

        [call] = stack.tencent_calls()
        assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
        assert call.error_code == 0
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True

        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        assert f"<@{ALICE}>" in parent["text"]
        assert "`/room mute-all`" in parent["text"]
        assert "`room-test`" in parent["text"]
        assert "abuse report" in parent["text"]
        assert "✅ done: 1/1 room changed" in parent["text"]  # updated with the overall status

        [result] = stack.slack.thread(GENERAL, parent["ts"])
        assert result["thread_ts"] == parent["ts"]
        assert "✅ `room-test` — audio muted" in result["text"]
        assert f"RequestId `{call.request_id}`" in result["text"]
        assert stack.response_posts(key) == []


async def test_multi_room_toggle_is_partial_for_every_room(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("disable-screenshare room-test room-2")
        await stack.settle()
        bodies = sorted(
            (c.body for c in stack.tencent_calls()), key=lambda b: b["RoomInfo"]["RoomId"]
        )
        assert bodies == [
            {"RoomInfo": {"RoomId": "room-2", "IsScreenSharingDisabled": True}},
            {"RoomInfo": {"RoomId": "room-test", "IsScreenSharingDisabled": True}},
        ]
        # partial means partial: fields not named are untouched
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is False
        assert stack.emulator.rooms["room-test"]["RoomName"] == "room-test"


async def test_unlisted_user_is_denied_in_the_ack_and_nothing_is_called(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply, _ = await stack.slash("mute-all room-test", user=MALLORY)
        assert reply.status == 200
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert "`mute-all`" in body["text"]
        assert MALLORY in body["text"]
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls_to("chat.postMessage") == []


async def test_a_user_id_in_the_text_grants_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply, _ = await stack.slash(f"mute-all room-test --reason <@{ALICE}>", user=MALLORY)
        assert "not allowed" in reply.json()["text"]
        await stack.settle()
        assert stack.emulator.requests == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("frobnicate room-test", "frobnicate"),
        ("rename room-test", "usage"),
        ("set-capacity room-test 0", "positive"),
        ("mute-all", "room"),
    ],
)
async def test_parse_errors_are_answered_in_the_ack_without_calls(
    tmp_path: Path, text: str, fragment: str
) -> None:
    async with running_stack(tmp_path) as stack:
        reply, _ = await stack.slash(text)
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert fragment.lower() in body["text"].lower()
        assert "Usage:" in body["text"] or "did you mean" in body["text"].lower()
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls_to("chat.postMessage") == []


async def test_bad_signature_is_rejected_with_401_and_nothing_happens(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _key, url = stack.new_response_url()
        body = form_body(slash_command("mute-all room-test", user_id=ALICE, response_url=url))
        wrong_secret = await stack.post(body, secret="not-the-signing-secret")
        assert wrong_secret.status == 401
        # a body altered after signing: the signature of the original must not carry over
        tampered = body.replace(b"room-test", b"room-2")
        async with stack.session.post(
            stack.url,
            data=tampered,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **sign(body, SIGNING_SECRET),
            },
        ) as response:
            assert response.status == 401
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls == []


async def test_replayed_timestamp_older_than_five_minutes_is_rejected(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _key, url = stack.new_response_url()
        body = form_body(slash_command("mute-all room-test", user_id=ALICE, response_url=url))
        reply = await stack.post(body, timestamp=int(time.time()) - 301)
        assert reply.status == 401
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls_to("chat.postMessage") == []


async def test_unknown_room_shows_code_hint_and_request_id(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("mute-all no-such-room")
        await stack.settle()
        [call] = stack.tencent_calls()
        assert call.error_code == 100004
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        [result] = stack.slack.thread(GENERAL, parent["ts"])
        assert "❌ `no-such-room` — error 100004" in result["text"]
        assert "check the ID" in result["text"]
        assert f"RequestId `{call.request_id}`" in result["text"]
        assert "❌ failed" in parent["text"]


async def test_internal_error_retried_until_success(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emulator.script("update_room_info", [100001, "502"])
        await stack.slash("disable-chat room-test")
        await stack.settle()
        calls = stack.tencent_calls()
        assert [c.error_code for c in calls if c.http_status == 200] == [100001, 0]
        assert len(calls) == 3
        assert stack.emulator.rooms["room-test"]["IsMessageDisabled"] is True
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        [result] = stack.slack.thread(GENERAL, parent["ts"])
        assert "✅ `room-test` — chat disabled" in result["text"]
        assert f"RequestId `{calls[-1].request_id}`" in result["text"]


async def test_not_in_channel_falls_back_to_response_url_with_request_id(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.private_channel("G0PRIVATE1", error="not_in_channel")
        reply, key = await stack.slash(
            "mute-all room-test", channel="G0PRIVATE1", channel_name="privategroup"
        )
        assert reply.status == 200
        await stack.settle()
        [call] = stack.tencent_calls()
        posts = stack.response_posts(key)
        assert len(posts) == 2
        result, hint = posts
        assert result["response_type"] == "in_channel"
        assert "✅ `room-test` — audio muted" in result["text"]
        assert f"RequestId `{call.request_id}`" in result["text"]
        assert hint["response_type"] == "ephemeral"
        assert "/invite" in hint["text"]


async def test_direct_message_falls_back_too(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.private_channel("D0DIRECT01")
        _reply, key = await stack.slash(
            "unmute-all room-test", channel="D0DIRECT01", channel_name="directmessage"
        )
        await stack.settle()
        [result, _hint] = stack.response_posts(key)
        assert "audio unmuted" in result["text"]
        assert "RequestId `Id-" in result["text"]


async def test_slack_rate_limit_is_honoured(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.rate_limit("chat.postMessage", retry_after=1, times=1)
        await stack.slash("mute-all room-test")
        await stack.settle(timeout=15)
        posts = stack.slack.calls_to("chat.postMessage")
        # the 429'd call was retried after Retry-After, and then everything went through
        assert len(posts) >= 3
        assert posts[1].at - posts[0].at >= 0.9
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        assert len(stack.slack.thread(GENERAL, parent["ts"])) == 1


async def test_dry_run_shows_exact_json_and_calls_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply, _ = await stack.slash("rename room-test “Town hall” --dry-run")
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert '{"RoomInfo": {"RoomId": "room-test", "RoomName": "Town hall"}}' in body["text"]
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls_to("chat.postMessage") == []


async def test_help_is_ephemeral_and_lists_only_permitted_verbs(tmp_path: Path) -> None:
    policy = """
[roles.viewers]
verbs = ["show", "mute-all"]
users = ["U0VIEWER1"]
"""
    async with running_stack(tmp_path, policy_toml=policy) as stack:
        reply, _ = await stack.slash("help", user="U0VIEWER1")
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert "mute-all" in body["text"]
        assert "show" in body["text"]
        assert "lockdown" not in body["text"]
        full, _ = await stack.slash("help")
        assert "lockdown" in full.json()["text"]


async def test_show_answers_ephemerally_with_room_state(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply, key = await stack.slash("show room-test")
        assert reply.status == 200
        await stack.settle()
        [post] = stack.response_posts(key)
        assert post["response_type"] == "ephemeral"
        assert "`room-test`" in post["text"]
        assert "RequestId `Id-" in post["text"]
        assert stack.tencent_calls("get_room_info")
        assert stack.tencent_calls() == []


async def test_user_group_role_grants_via_usergroups_and_fails_closed(tmp_path: Path) -> None:
    policy = """
[roles.oncall]
verbs = ["mute-all"]
usergroups = ["S0ONCALL01"]
"""
    async with running_stack(tmp_path, allowed_users=(), policy_toml=policy) as stack:
        stack.slack.usergroups["S0ONCALL01"] = ["U0ONCALL1"]
        reply, _ = await stack.slash("mute-all room-test", user="U0ONCALL1")
        assert reply.json() == {}
        await stack.settle()
        assert len(stack.tencent_calls()) == 1
        assert len(stack.slack.calls_to("usergroups.users.list")) == 1

    async with running_stack(tmp_path, allowed_users=(), policy_toml=policy) as stack:
        stack.slack.fail("usergroups.users.list", "internal_error")
        reply, _ = await stack.slash("mute-all room-test", user="U0ONCALL1")
        assert "not allowed" in reply.json()["text"]
        assert "S0ONCALL01" in reply.json()["text"]
        await stack.settle()
        assert stack.tencent_calls() == []


async def test_when_slack_refuses_every_way_the_outcome_is_still_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.private_channel("G0PRIVATE2", error="not_in_channel")
        key, url = stack.new_response_url()
        stack.slack.expire_response_url(key)
        body = form_body(
            slash_command(
                "mute-all room-test", user_id=ALICE, channel_id="G0PRIVATE2", response_url=url
            )
        )
        with caplog.at_level("ERROR", logger="handlers.delivery"):
            reply = await stack.post(body)
            assert reply.status == 200
            await stack.settle()
        [call] = stack.tencent_calls()
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "could not deliver outcome" in logged
        assert f"room-test=ok request_id={call.request_id}" in logged
        # ... and the audit trail has it too
        assert stack.bot.audit is not None
        [row] = await stack.bot.audit.query(room="room-test")
        assert row.tencent_request_id == call.request_id


async def test_a_no_op_is_counted_as_already_so_not_as_a_change(tmp_path: Path) -> None:
    """#12.2: muting an already muted room must not say "1/1 room changed" anywhere."""
    async with running_stack(tmp_path) as stack:
        stack.emulator.rooms["room-test"]["IsAudioDisabled"] = True
        stack.emulator.rooms["room-2"]["IsAudioDisabled"] = False
        await stack.slash("mute-all room-test room-2")
        await stack.settle()
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        status = parent["text"].splitlines()[-1]
        assert status == "✅ done: 1/2 rooms changed, 1 already so"
        [summary] = stack.slack.thread(GENERAL, parent["ts"])
        assert summary["text"].startswith("✅ done: 1/2 rooms changed, 1 already so")
        assert "`room-test` — audio muted — it already was, nothing changed" in summary["text"]
        await stack.slash("mute-all room-test")
        await stack.settle()
        second = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None][-1]
        assert second["text"].splitlines()[-1] == "✅ done: 1/1 room already so, nothing changed"
        assert "changed" not in second["text"].replace("nothing changed", "")


async def test_a_huge_command_from_anyone_is_refused_small_and_stored_small(
    tmp_path: Path,
) -> None:
    """#12.9: a 40,000-character command from a user with no permissions at all."""
    async with running_stack(tmp_path) as stack:
        huge = "mute-all " + "x" * 40_000
        reply, _key = await stack.slash(huge, user=MALLORY)
        assert reply.status == 200
        text = reply.json()["text"]
        assert len(text) < 600, len(text)
        assert "the limit is 33,500" in text
        await stack.settle()
        rows = await stack.rows()
        assert len(rows) == 1
        assert len(rows[0].raw_text) <= 2_000
        assert len(rows[0].detail or "") <= 400
        assert stack.tencent_calls() == []
        # a long but valid room list is refused for permissions, and its echo stays short too
        many = "mute-all " + " ".join(f"room-{i:03d}-{'y' * 40}" for i in range(400))
        reply, _key = await stack.slash(many, user=MALLORY)
        assert len(reply.json()["text"]) < 600


async def test_a_replayed_command_runs_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _key, url = stack.new_response_url()
        body = form_body(slash_command("disable-video room-test", user_id=ALICE, response_url=url))
        for _ in range(2):
            assert (await stack.post(body)).status == 200
        await stack.settle()
        assert len(stack.tencent_calls()) == 1


async def test_a_write_without_a_trigger_id_is_refused_and_never_runs(tmp_path: Path) -> None:
    """Issue 27, item 5: with an empty `trigger_id` a replayed command ran twice."""
    async with running_stack(tmp_path) as stack:
        _key, url = stack.new_response_url()
        fields = slash_command("disable-video room-test", response_url=url, trigger_id="")
        body = form_body(fields)
        replies = [await stack.post(body) for _ in range(2)]
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls_to("chat.postMessage") == []
        for reply in replies:
            assert reply.status == 200
            answer = reply.json()
            assert answer["response_type"] == "ephemeral"
            assert "without a trigger_id" in answer["text"]
            assert "nothing was run" in answer["text"]
        # A read changes nothing, so it still answers.
        show = form_body(slash_command("show room-test", response_url=url, trigger_id=""))
        assert (await stack.post(show)).status == 200
        await stack.settle()
        # (The room's card lists its seats: `show` reads them too.)
        assert sorted(r.command for r in stack.emulator.requests) == [
            "get_room_info",
            "get_seat_list",
        ]
