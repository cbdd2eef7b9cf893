"""The fake Slack Web API, driven by slack_sdk's real AsyncWebClient as roombot will drive it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from testkit import MANIFEST_BOT_SCOPES, FakeSlack

BOT_TOKEN = "xoxb-test-bot-token"
C = "C0GENERAL1"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


# -- messages and threads ----------------------------------------------------------------------


async def test_post_message_returns_channel_ts_and_message(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    response = await client.chat_postMessage(channel=C, text="hello")

    assert response["ok"] is True
    assert response["channel"] == C
    assert response["message"]["text"] == "hello"
    assert response["message"]["ts"] == response["ts"]
    assert response["message"]["user"] == slack.bot_user_id
    assert "thread_ts" not in response["message"]
    [stored] = slack.messages(C)
    assert stored["ts"] == response["ts"]
    assert stored["thread_ts"] is None
    assert stored["channel"] == C


async def test_timestamps_are_unique_increasing_and_slack_shaped(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    stamps = [(await client.chat_postMessage(channel=C, text=str(i)))["ts"] for i in range(30)]

    assert all(len(ts.split(".")[1]) == 6 and ts.split(".")[0].isdigit() for ts in stamps)
    assert len(set(stamps)) == len(stamps)
    assert [float(ts) for ts in stamps] == sorted(float(ts) for ts in stamps)
    assert stamps[0].startswith("1700000000.")


async def test_update_edits_the_stored_message(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=C, text="working…", blocks=[_section("a")])

    updated = await client.chat_update(channel=C, ts=posted["ts"], text="done")

    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "done"
    [stored] = slack.messages(C)
    assert stored["text"] == "done"
    # Slack keeps blocks an update does not mention.
    assert stored["blocks"] == [_section("a")]
    assert "edited" in stored


async def test_update_of_unknown_message_is_message_not_found(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_update(channel=C, ts="1700000000.999900", text="x")
    assert _error(excinfo) == "message_not_found"


async def test_thread_replies_are_found_under_their_parent(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel=C, text="parent")
    other = await client.chat_postMessage(channel=C, text="other parent")
    reply = await client.chat_postMessage(channel=C, text="reply", thread_ts=parent["ts"])
    await client.chat_postMessage(channel=C, text="elsewhere", thread_ts=other["ts"])

    assert reply["message"]["thread_ts"] == parent["ts"]
    assert [m["text"] for m in slack.thread(C, parent["ts"])] == ["reply"]
    assert len(slack.messages(C)) == 4
    assert slack.messages("C0OTHER001") == []


async def test_reply_to_unknown_thread_is_accepted_but_in_no_thread(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel=C, text="parent")
    await client.chat_postMessage(channel=C, text="lost", thread_ts="1600000000.000100")

    assert slack.thread(C, parent["ts"]) == []


async def test_malformed_thread_ts_is_invalid_thread_ts(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel=C, text="x", thread_ts="not-a-ts")
    assert _error(excinfo) == "invalid_thread_ts"


async def test_message_without_content_is_no_text(client: AsyncWebClient) -> None:
    # slack_sdk warns about the missing text before sending; the fake must still refuse it.
    with pytest.warns(UserWarning, match="text"), pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel=C, text="")
    assert _error(excinfo) == "no_text"


async def test_block_kit_limits_are_enforced(slack: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel=C, text="x", blocks=[_section("y" * 3001)])
    assert _error(excinfo) == "invalid_blocks"
    assert excinfo.value.response["errors"] == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel=C, text="x", blocks=[_section("y")] * 51)
    assert _error(excinfo) == "invalid_blocks"
    button = {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}, "value": "v"}
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(
            channel=C, text="x", blocks=[{"type": "actions", "elements": [button]}]
        )
    assert "json-pointer:/blocks/0/elements/0/text/text" in excinfo.value.response["errors"][0]
    # At the limits themselves Slack accepts the message.
    await client.chat_postMessage(channel=C, text="x", blocks=[_section("y" * 3000)] * 50)
    assert len(slack.messages(C)) == 1


async def test_form_encoded_post_with_blocks_string_and_token_param(slack: FakeSlack) -> None:
    # Slack's other content type: form fields, `blocks` as a JSON string, token as a parameter.
    async with aiohttp.ClientSession() as session:
        form = {"token": BOT_TOKEN, "channel": C, "blocks": json.dumps([_section("hi")])}
        async with session.post(slack.api_url + "chat.postMessage", data=form) as response:
            body = await response.json()

    assert body["ok"] is True
    [call] = slack.calls_to("chat.postMessage")
    assert call.params["blocks"] == [_section("hi")]
    assert call.token == BOT_TOKEN
    assert "token" not in call.params
    assert slack.messages(C)[0]["blocks"] == [_section("hi")]


# -- ephemeral, usergroups, auth ---------------------------------------------------------------


async def test_post_ephemeral_returns_message_ts_and_is_not_a_channel_message(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    response = await client.chat_postEphemeral(channel=C, user="U0ALICE01", text="only you")

    assert response["ok"] is True
    assert response["message_ts"]
    assert slack.messages(C) == []
    [ephemeral] = slack.ephemerals(C, user="U0ALICE01")
    assert ephemeral["text"] == "only you"
    assert ephemeral["ts"] == response["message_ts"]


async def test_post_ephemeral_to_a_non_member_is_user_not_in_channel(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.channel_members[C] = ["U0ALICE01"]
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postEphemeral(channel=C, user="U0BOB0001", text="x")
    assert _error(excinfo) == "user_not_in_channel"


async def test_usergroup_members_and_unknown_group(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.usergroups["S0ONCALL01"] = ["U0ALICE01", "U0BOB0001"]

    response = await client.usergroups_users_list(usergroup="S0ONCALL01")
    assert response["users"] == ["U0ALICE01", "U0BOB0001"]
    assert slack.calls_to("usergroups.users.list")[0].params == {"usergroup": "S0ONCALL01"}

    with pytest.raises(SlackApiError) as excinfo:
        await client.usergroups_users_list(usergroup="S0NOPE0001")
    assert _error(excinfo) == "no_such_subteam"


async def test_auth_test_identifies_the_bot_and_reports_scopes_in_header(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    response = await client.auth_test()

    assert response["user_id"] == slack.bot_user_id == "UBOT0001"
    assert response["team_id"] == slack.team_id == "T0TEAM001"
    assert response["bot_id"]
    assert response["url"].startswith("https://")
    granted = response.headers["x-oauth-scopes"].split(",")
    assert tuple(granted) == MANIFEST_BOT_SCOPES


async def test_missing_scope_names_what_is_needed() -> None:
    async with FakeSlack(scopes=("commands", "chat:write")) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as excinfo:
            await client.usergroups_users_list(usergroup="S0ONCALL01")
        assert _error(excinfo) == "missing_scope"
        assert excinfo.value.response["needed"] == "usergroups:read"
        assert (await client.auth_test()).headers["x-oauth-scopes"] == "commands,chat:write"


async def test_tokens_are_checked() -> None:
    async with FakeSlack(bot_token=BOT_TOKEN) as slack:
        good = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        assert (await good.auth_test())["ok"] is True
        for token, error in [
            ("xoxb-someone-else", "invalid_auth"),
            ("xapp-1-app-level", "not_allowed_token_type"),
            (None, "not_authed"),
        ]:
            client = AsyncWebClient(token=token, base_url=slack.api_url)
            with pytest.raises(SlackApiError) as excinfo:
                await client.chat_postMessage(channel=C, text="x")
            assert _error(excinfo) == error, token
        assert slack.messages() == []


async def test_unknown_method_is_unknown_method(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        await client.api_call("conversations.nonsense")
    assert _error(excinfo) == "unknown_method"


# -- channels the bot cannot post in ------------------------------------------------------------


async def test_private_channel_bot_is_not_in_raises_slack_api_error(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.private_channel("G0SECRET01")
    slack.private_channel("G0SECRET02", error="not_in_channel")

    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel="G0SECRET01", text="x")
    assert _error(excinfo) == "channel_not_found"
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel="G0SECRET02", text="x")
    assert _error(excinfo) == "not_in_channel"
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postEphemeral(channel="G0SECRET01", user="U0ALICE01", text="x")
    assert _error(excinfo) == "channel_not_found"
    assert slack.messages() == []
    assert slack.ephemerals() == []


async def test_public_channel_needs_membership_without_chat_write_public() -> None:
    async with FakeSlack(scopes=("commands", "chat:write")) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as excinfo:
            await client.chat_postMessage(channel=C, text="x")
        assert _error(excinfo) == "not_in_channel"

        slack.joined_channels.add(C)
        assert (await client.chat_postMessage(channel=C, text="x"))["ok"] is True


# -- fault injection ---------------------------------------------------------------------------


async def test_injected_failures_are_consumed_in_order_and_per_channel(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", "is_archived", channel="C0ARCHIVE1")
    slack.fail("chat.postMessage", "internal_error", times=2)

    # The channel-restricted fault does not fire elsewhere; the general one fires twice.
    for _ in range(2):
        with pytest.raises(SlackApiError) as excinfo:
            await client.chat_postMessage(channel=C, text="x")
        assert _error(excinfo) == "internal_error"
    assert (await client.chat_postMessage(channel=C, text="x"))["ok"] is True
    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel="C0ARCHIVE1", text="x")
    assert _error(excinfo) == "is_archived"
    assert (await client.chat_postMessage(channel="C0ARCHIVE1", text="x"))["ok"] is True
    assert len(slack.calls_to("chat.postMessage")) == 5
    assert [m["channel"] for m in slack.messages()] == [C, "C0ARCHIVE1"]


async def test_rate_limit_without_retry_handler_raises_with_retry_after(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.rate_limit("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as excinfo:
        await client.chat_postMessage(channel=C, text="x")

    assert excinfo.value.response.status_code == 429
    assert excinfo.value.response.headers["Retry-After"] == "7"
    assert _error(excinfo) == "ratelimited"
    assert slack.messages() == []


@pytest.mark.slow  # the real clock
async def test_rate_limit_is_retried_after_retry_after_by_the_sdk_handler(
    slack: FakeSlack,
) -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.rate_limit("chat.postMessage", retry_after=1)

    started = time.monotonic()
    response = await client.chat_postMessage(channel=C, text="eventually")
    elapsed = time.monotonic() - started

    assert response["ok"] is True
    assert elapsed >= 0.95  # the handler slept for Retry-After (plus jitter) before retrying
    first, second = slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 0.95
    assert [m["text"] for m in slack.messages(C)] == ["eventually"]


# -- response_url ------------------------------------------------------------------------------


async def test_response_url_records_posts_and_allows_five_uses(slack: FakeSlack) -> None:
    webhook = AsyncWebhookClient(slack.response_url("cmd1"))

    statuses = [
        (await webhook.send(text=f"reply {i}", response_type="ephemeral")).status_code
        for i in range(6)
    ]

    assert statuses == [200] * 5 + [404]
    assert [body["text"] for key, body in slack.response_posts if key == "cmd1"] == [
        f"reply {i}" for i in range(5)
    ]
    assert slack.refused_response_posts[0][0] == "cmd1"
    assert slack.refused_response_posts[0][2] == "used_url"
    # Another key has its own five uses.
    other = AsyncWebhookClient(slack.response_url("cmd2"))
    assert (await other.send(text="fresh")).body == "ok"


async def test_expired_response_url_is_refused(slack: FakeSlack) -> None:
    slack.expire_response_url("old")
    response = await AsyncWebhookClient(slack.response_url("old")).send(text="late")
    assert (response.status_code, response.body) == (404, "expired_url")
    assert slack.response_posts == []


# -- observing ---------------------------------------------------------------------------------


async def test_wait_for_returns_once_the_condition_holds(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel=C, text="x")
    await slack.wait_for(lambda: len(slack.messages(C)) == 1, timeout=1.0)


async def test_wait_for_timeout_lists_calls_without_the_token(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel=C, text="the only message")

    with pytest.raises(AssertionError) as excinfo:
        await slack.wait_for(lambda: len(slack.messages()) == 2, timeout=0.05)

    report = str(excinfo.value)
    assert "chat.postMessage" in report
    assert "the only message" in report
    assert BOT_TOKEN not in report


async def test_recorded_call_repr_hides_the_token(slack: FakeSlack, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel=C, text="x")
    [call] = slack.calls
    assert call.token == BOT_TOKEN
    assert BOT_TOKEN not in repr(call)
    assert BOT_TOKEN not in repr(slack.calls)


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_a_disconnect_gives_no_answer_but_may_still_apply_the_call() -> None:
    async with FakeSlack(bot_token="xoxb-test-1") as slack:
        client = AsyncWebClient(token="xoxb-test-1", base_url=slack.api_url)
        client.retry_handlers.clear()  # see the failure itself, not slack_sdk's retry of it
        slack.disconnect("chat.postMessage", applied=True)
        with pytest.raises(aiohttp.ClientError):
            await client.chat_postMessage(channel="C0GENERAL1", text="hello")
        assert [m["text"] for m in slack.messages("C0GENERAL1")] == ["hello"]  # it was posted
        slack.disconnect("chat.postMessage", applied=False)
        with pytest.raises(aiohttp.ClientError):
            await client.chat_postMessage(channel="C0GENERAL1", text="lost")
        assert [m["text"] for m in slack.messages("C0GENERAL1")] == ["hello"]
        reply = await client.chat_postMessage(channel="C0GENERAL1", text="again")
        assert reply["ok"] is True


async def test_a_delay_answers_late() -> None:
    async with FakeSlack(bot_token="xoxb-test-1") as slack:
        client = AsyncWebClient(token="xoxb-test-1", base_url=slack.api_url)
        slack.delay("auth.test", 0.3)
        started = time.monotonic()
        await client.auth_test()
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        await client.auth_test()
        assert time.monotonic() - started < 0.3


# -- files ----------------------------------------------------------------------------------------


async def test_files_upload_v2_shares_the_bytes_in_a_thread(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL1", text="summary")
    done = await client.files_upload_v2(
        file_uploads=[
            {"content": "# one ✓\n", "filename": "a.md", "title": "A"},
            {"content": "two\n", "filename": "b.md", "title": "B"},
        ],
        channel="C0GENERAL1",
        thread_ts=parent["ts"],
    )
    assert [f["title"] for f in done["files"]] == ["A", "B"]
    assert [(f["filename"], f["content"], f["thread_ts"]) for f in slack.files] == [
        ("a.md", "# one ✓\n", parent["ts"]),
        ("b.md", "two\n", parent["ts"]),
    ]
    assert [c.method for c in slack.calls if c.method.startswith("files.")] == [
        "files.getUploadURLExternal",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_files_need_files_write_and_an_uploaded_file() -> None:
    scopes = tuple(s for s in MANIFEST_BOT_SCOPES if s != "files:write")
    async with FakeSlack(scopes=scopes) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as excinfo:
            await client.files_upload_v2(content="x", filename="x.md", channel="C0GENERAL1")
        assert _error(excinfo) == "missing_scope"
        assert excinfo.value.response["needed"] == "files:write"
    async with FakeSlack() as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        ticket = await client.files_getUploadURLExternal(filename="x.md", length=3)
        with pytest.raises(SlackApiError) as excinfo:  # the bytes were never sent
            await client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}])
        assert _error(excinfo) == "file_not_found"
        assert slack.files == []
