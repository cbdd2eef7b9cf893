"""The timeline in Slack above its limits: split into file parts at line ends (their
concatenation is the whole timeline), truncated beyond the most files saying so, uploaded to the
fake Slack through `files_upload_v2`'s three steps; a channel the bot cannot post in falls back
to the response_url with the summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.timeline import Entry, Timeline, TimelineView, Window
from handlers.timeline_file import deliver_timeline, split_text, timeline_message
from testkit import FakeSlack

T0 = 1_765_000_000.0
CHANNEL = "C0INCIDENT"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def _client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


def _timeline(requests: int) -> Timeline:
    entries = [
        Entry(
            at=T0 + i,
            request_key=f"k{i}",
            who="U0ALICE01",
            source="slash",
            kind="request",
            verb="mute-all",
            raw_text=f"mute-all room-{i}",
            reason="ünïcode reason",
            rooms=[f"room-{i}"],
            outcomes=Counter({"ok": 1}),
            request_ids=[f"Id-{i:032x}-O-Seq-1"],
            row_ids=[i],
        )
        for i in range(requests)
    ]
    return Timeline(window=Window(T0, T0 + 3600), entries=entries, traffic={})


def test_split_text_cuts_at_line_ends_and_keeps_everything() -> None:
    text = "".join(f"line {i} ✓\n" for i in range(100))
    parts, truncated = split_text(text, 100, 50)
    assert not truncated
    assert "".join(parts) == text
    assert all(len(p.encode()) <= 100 for p in parts)
    assert all(p.endswith("\n") for p in parts)
    kept, cut = split_text(text, 100, 3)
    assert cut
    assert len(kept) == 3
    assert all(len(p.encode()) <= 100 for p in kept)
    assert kept[-1].endswith("bytes.\n")
    assert "truncated" in kept[-1]


async def test_a_long_timeline_is_split_into_files_and_uploaded(slack: FakeSlack) -> None:
    timeline = _timeline(300)
    whole = timeline.markdown()
    message = timeline_message(TimelineView(timeline=timeline), part_bytes=8_000, max_files=10)
    assert len(message.files) == len(whole.encode()) // 8_000 + 1
    assert f"split into {len(message.files)} files" in message.text
    await deliver_timeline(_client(slack), message, channel=CHANNEL)
    [summary] = slack.messages(CHANNEL)
    assert summary["text"] == message.text
    shared = slack.files
    assert [f["title"] for f in shared] == [
        f"Timeline 20251206T0546Z (part {n} of {len(shared)})" for n in range(1, len(shared) + 1)
    ]
    assert all(f["thread_ts"] == summary["ts"] for f in shared)
    assert "".join(f["content"] for f in shared) == whole
    assert len(slack.calls_to("files.completeUploadExternal")) == 1  # one share of all parts


async def test_beyond_the_most_files_it_is_truncated_and_says_so(slack: FakeSlack) -> None:
    timeline = _timeline(300)
    message = timeline_message(TimelineView(timeline=timeline), part_bytes=8_000, max_files=2)
    assert len(message.files) == 2
    assert "truncated after 2 file(s)" in message.text
    assert "`roombot audit --format md`" in message.text
    await deliver_timeline(_client(slack), message, channel=CHANNEL)
    assert [f["content"].endswith("2 files of 8,000 bytes.\n") for f in slack.files] == [
        False,
        True,
    ]


async def test_a_channel_the_bot_cannot_post_in_gets_the_summary_by_response_url(
    slack: FakeSlack,
) -> None:
    slack.private_channel(CHANNEL)
    message = timeline_message(TimelineView(timeline=_timeline(2)))
    await deliver_timeline(
        _client(slack), message, channel=CHANNEL, response_url=slack.response_url("k")
    )
    assert slack.files == []
    [(key, post)] = slack.response_posts
    assert key == "k"
    assert post["text"].startswith(message.text)
    assert "I cannot post in this channel (`channel_not_found`)" in post["text"]


def test_a_refusal_is_one_line_without_files() -> None:
    message = timeline_message(TimelineView(problem="the window is 8d long; the most is 7d"))
    assert message.text == ":x: No timeline: the window is 8d long; the most is 7d"
    assert message.files == ()
