"""`roombot callbacks install URL [--members] | show | remove` against the Room Engine emulator,
through `bot.cli.main` (its own event loop, so in a thread): the configuration made, the token
appended and never printed, usage errors before any call, Tencent's errors with their hints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.callbacks_cli import MEMBER_CALLBACKS, ROOM_CALLBACKS, install_url, masked
from bot.cli import main
from bot.tencent.emulator import RoomEngineEmulator

SDKAPPID = 1400000066
SECRET_KEY = "cli0callbacks0secret" + "0" * 44
TOKEN = "cli-callback-token-0123456789"
URL = "https://roombot.example.com/tencent/callback"


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RoomEngineEmulator]:
    async with RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY) as running:
        monkeypatch.setenv("TENCENT_SDKAPPID", str(SDKAPPID))
        monkeypatch.setenv("TENCENT_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("TENCENT_API_URL", running.base_url)
        monkeypatch.setenv("ROOMBOT_CALLBACK_TOKEN", TOKEN)
        yield running


async def roombot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["callbacks", *args])
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    return code, captured.out, captured.err


async def test_install_show_and_remove_round_trip(
    emulator: RoomEngineEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await roombot(capsys, "show")
    assert (code, out) == (
        0,
        "no callback configuration (install one: roombot callbacks install URL)\n",
    )

    code, out, err = await roombot(capsys, "install", URL)
    assert (code, err) == (0, "")
    config = emulator.callback_config
    assert config is not None
    assert config.url == f"{URL}?token={TOKEN}"
    assert config.commands == ROOM_CALLBACKS
    lines = out.splitlines()
    assert lines[0] == f"installed: {URL}?token=***"
    assert lines[1] == "commands: " + ", ".join(ROOM_CALLBACKS)
    assert lines[2].startswith("RequestId Id-")
    assert lines[3] == "member and seat callbacks are not registered (add them with --members)"

    code, out, _ = await roombot(capsys, "install", URL, "--members")
    assert code == 0
    assert out.splitlines()[0] == (
        f"replaced the configuration for {URL}?token=***: {URL}?token=***"
    )
    assert emulator.callback_config is not None
    assert emulator.callback_config.commands == ROOM_CALLBACKS + MEMBER_CALLBACKS

    code, out, _ = await roombot(capsys, "show")
    assert code == 0
    assert out.splitlines()[0] == f"url: {URL}?token=***"
    assert out.splitlines()[1] == "commands: " + ", ".join(ROOM_CALLBACKS + MEMBER_CALLBACKS)
    assert "warning" not in out

    code, out, _ = await roombot(capsys, "remove")
    assert code == 0
    assert out.startswith("removed the callback configuration · RequestId Id-")
    assert emulator.callback_config is None
    code, out, _ = await roombot(capsys, "remove")
    assert (code, out) == (0, "there was no callback configuration; nothing to remove\n")
    calls = [r.command for r in emulator.requests]
    assert calls == [
        "get_callback",
        "get_callback",
        "set_callback",
        "get_callback",
        "update_callback",
        "get_callback",
        "delete_callback",
        "delete_callback",
    ]


async def test_usage_problems_are_refused_before_any_call(
    emulator: RoomEngineEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = await roombot(capsys, "install", f"{URL}?token=someone-elses-token-000")
    assert code == 2
    assert "carries a token that is not ROOMBOT_CALLBACK_TOKEN" in err
    assert "someone-elses" not in err
    code, _, err = await roombot(capsys, "install", "ftp://roombot.example.com/x")
    assert code == 2
    assert err.startswith("roombot callbacks: the URL must start with https://")
    monkeypatch.delenv("ROOMBOT_CALLBACK_TOKEN")
    code, _, err = await roombot(capsys, "install", URL)
    assert code == 2
    assert "ROOMBOT_CALLBACK_TOKEN is not set" in err
    assert emulator.requests == []


async def test_a_url_already_carrying_our_token_is_kept_and_a_foreign_one_is_flagged(
    emulator: RoomEngineEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await roombot(capsys, "install", f"{URL}?region=eu&token={TOKEN}")
    assert code == 0
    assert emulator.callback_config is not None
    assert emulator.callback_config.url == f"{URL}?region=eu&token={TOKEN}"
    assert out.splitlines()[0] == f"installed: {URL}?region=eu&token=***"
    # Someone else points the configuration elsewhere: show says roombot would refuse it.
    emulator.callback_config = type(emulator.callback_config)(
        "https://elsewhere.example.com/hook", ROOM_CALLBACKS
    )
    code, out, _ = await roombot(capsys, "show")
    assert code == 0
    assert "warning: the URL does not carry ROOMBOT_CALLBACK_TOKEN" in out


async def test_tencents_errors_come_with_their_hint_and_exit_1(
    emulator: RoomEngineEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator.script("set_callback", [100001])
    code, out, err = await roombot(capsys, "install", URL)
    assert (code, out) == (1, "")
    assert err.startswith("roombot callbacks: could not install the callback configuration: ")
    assert "error 100001" in err
    assert "it is safe to try again" in err
    assert "RequestId Id-" in err
    monkeypatch.setenv("TENCENT_SECRET_KEY", "f" * 64)
    code, _, err = await roombot(capsys, "show")
    assert code == 1
    assert "could not read the callback configuration: error 7" in err


async def test_a_path_roombot_does_not_serve_is_pointed_out(
    emulator: RoomEngineEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await roombot(capsys, "install", "https://roombot.example.com/hooks")
    assert code == 0
    assert "note: `roombot serve` receives callbacks at /tencent/callback" in out


def test_install_url_and_masking() -> None:
    assert install_url(URL, TOKEN) == f"{URL}?token={TOKEN}"
    assert install_url(f"{URL}?a=1", TOKEN) == f"{URL}?a=1&token={TOKEN}"
    assert masked(f"{URL}?token=x&Sign=y&usersig=z&a=1") == (
        f"{URL}?token=***&Sign=***&usersig=***&a=1"
    )
    assert masked(URL) == URL
