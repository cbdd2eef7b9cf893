"""`timeline` in Slack: a short summary for the thread, and the whole timeline as Markdown
file(s) uploaded with `files_upload_v2` (scope `files:write`).

Slack's limits: message text is kept under `MAX_TEXT_CHARS` (a longer summary is cut, saying
so); the file is split at line ends into parts of at most `FILE_PART_BYTES` each, at most
`MAX_FILES` of them (what one `files.completeUploadExternal` call takes), and a timeline longer
than that is truncated: the summary says how, and the last part ends saying so too. When the
upload fails (for example `missing_scope`: the app was installed without `files:write`), the
summary says so and how to get the file (`roombot audit --format md`, or the console).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final

from slack_sdk.web.async_client import AsyncWebClient

from bot.timeline import TimelineView
from handlers.blocks import MAX_TEXT_CHARS, Message, SlackFile, escape
from handlers.delivery import SLACK_FAILURES, post_response_url, slack_error

log = logging.getLogger(__name__)

#: The largest part of a timeline file, in UTF-8 bytes (far below Slack's file limit, so an
#: upload stays quick and the file opens in Slack's viewer).
FILE_PART_BYTES: Final = 1_000_000
#: The most files one upload carries (`files.completeUploadExternal` takes ten).
MAX_FILES: Final = 10
_TRUNCATED: Final = "\n… truncated: the timeline is longer than {max} files of {size:,} bytes.\n"


def timeline_message(
    view: TimelineView, *, part_bytes: int = FILE_PART_BYTES, max_files: int = MAX_FILES
) -> Message:
    """The summary (or the refusal) as a message, with the timeline as file part(s)."""
    if view.timeline is None:
        return Message(text=f":x: No timeline: {escape(view.problem or 'unknown problem')}")
    timeline = view.timeline
    parts, truncated = split_text(timeline.markdown(), part_bytes, max_files)
    stamp = _stamp(timeline.window.start)
    files = tuple(
        SlackFile(
            filename=f"timeline-{stamp}{f'-part{n}' if len(parts) > 1 else ''}.md",
            title=f"Timeline {stamp}{f' (part {n} of {len(parts)})' if len(parts) > 1 else ''}",
            content=part,
        )
        for n, part in enumerate(parts, start=1)
    )
    lines = [escape(line) for line in timeline.summary_lines()]
    if len(parts) > 1:
        lines.append(f"The timeline is split into {len(parts)} files (Slack's size limits).")
    if truncated:
        lines.append(
            f"The timeline is truncated after {len(parts)} file(s): the whole of it is in "
            "`roombot audit --format md` (or the console's `timeline`)."
        )
    text = "\n".join(lines)
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 40] + "\n… (summary cut at Slack's limit)"
    return Message(text=text, files=files)


def split_text(text: str, part_bytes: int, max_files: int) -> tuple[list[str], bool]:
    """`text` cut at line ends into parts of at most `part_bytes` UTF-8 bytes (a longer line is
    cut), at most `max_files` of them; True when something was left out."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    note = _TRUNCATED.format(max=max_files, size=part_bytes)
    for line in text.splitlines(keepends=True):
        encoded = line.encode()
        if len(encoded) > part_bytes:
            line = encoded[: part_bytes - 1].decode(errors="ignore") + "\n"
            encoded = line.encode()
        if size + len(encoded) > part_bytes:
            parts.append("".join(current))
            current, size = [], 0
            if len(parts) == max_files:
                last = parts[-1].encode()[: part_bytes - len(note.encode())].decode(errors="ignore")
                parts[-1] = last + note
                return parts, True
        current.append(line)
        size += len(encoded)
    if current or not parts:
        parts.append("".join(current))
    return parts, False


async def deliver_timeline(
    client: AsyncWebClient,
    message: Message,
    *,
    channel: str,
    thread_ts: str | None = None,
    response_url: str | None = None,
) -> None:
    """Post the summary in `channel` (in the thread of `thread_ts`, or as a new message whose
    thread then holds the file) and upload the timeline file(s) into that thread. The summary
    goes to `response_url` instead when the bot cannot post there; an upload that fails is said
    in the thread, with how to get the timeline otherwise."""
    try:
        posted = await client.chat_postMessage(
            channel=channel, text=message.text, thread_ts=thread_ts
        )
    except SLACK_FAILURES as exc:
        error = slack_error(exc)
        log.warning("timeline: cannot post the summary in %s: %s", channel, error)
        note = Message(
            text=f"{message.text}\n\nI cannot post in this channel (`{error}`), so the timeline "
            f"file is not shared here: invite me, or {_ELSEWHERE}."
        )
        if not await post_response_url(client, response_url, note, in_channel=False):
            log.error("timeline: the summary could not be delivered either")
        return
    if not message.files:
        return
    thread = thread_ts or str(posted.get("ts") or "") or None
    problem = await upload_files(client, message, channel=channel, thread_ts=thread)
    if problem is None:
        return
    try:
        await client.chat_postMessage(
            channel=channel, thread_ts=thread, text=f"{problem} Get it with {_ELSEWHERE}."
        )
    except SLACK_FAILURES as exc:
        log.error("timeline: could not say that the upload failed: %s", slack_error(exc))


_ELSEWHERE: Final = "`timeline` in `roombot console`, or `roombot audit --format md`"


async def upload_files(
    client: AsyncWebClient,
    message: Message,
    *,
    channel: str,
    thread_ts: str | None,
) -> str | None:
    """Upload `message.files` to `channel` (in the thread of `thread_ts`); None when done, or
    one line saying why not (Slack's error: `missing_scope`, `not_in_channel`...)."""
    uploads: list[dict[str, Any]] = [
        {"content": f.content, "filename": f.filename, "title": f.title} for f in message.files
    ]
    try:
        await client.files_upload_v2(file_uploads=uploads, channel=channel, thread_ts=thread_ts)
    except SLACK_FAILURES as exc:
        error = slack_error(exc)
        log.warning("timeline: the file upload failed: %s", error)
        hint = (
            " (the app lacks the `files:write` scope: add it and reinstall the app)"
            if error == "missing_scope"
            else ""
        )
        return f"The timeline file could not be uploaded: `{error}`{hint}."
    return None


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%MZ")
