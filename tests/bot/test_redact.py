"""`bot.redact`: secrets are scrubbed by pattern and by value, wherever they appear."""

from __future__ import annotations

from urllib.parse import quote

from bot.redact import MASK, forget_all, looks_secret, remember, remember_usersig, scrub, shown

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
SIG = "eJw1jtEKgjAUht-lXAtp2czdCTrPFgqGJNGN2srYmzZLLfXtM9f*zx-_"


def test_patterns_need_no_memory() -> None:
    forget_all()
    text = "GET /x?usersig=abc&sdkappid=1 token xoxb-1-2-abc and xapp-1-A-b"
    assert scrub(text) == f"GET /x?usersig={MASK}&sdkappid=1 token xoxb-{MASK} and xapp-{MASK}"


def test_remembered_values_are_scrubbed_anywhere() -> None:
    remember(KEY, None, "", "short")
    assert scrub(f"bad key {KEY}!") == f"bad key {MASK}!"
    assert scrub("short stays") == "short stays"  # too short to be scrubbed by value


def test_usersig_is_scrubbed_without_usersig_equals_and_percent_encoded() -> None:
    remember_usersig(SIG)
    assert SIG not in scrub(f"the signature {SIG} is not valid")
    assert quote(SIG, safe="") not in scrub(f"sig={quote(SIG, safe='')}")


def test_only_the_last_usersigs_are_kept() -> None:
    sigs = [f"{SIG}{i:02d}" for i in range(10)]
    for sig in sigs:
        remember_usersig(sig)
    assert scrub(sigs[-1]) == MASK
    assert scrub(sigs[0]) == sigs[0]


def test_extra_secrets_longest_first() -> None:
    assert scrub("abcdefgh-ijkl", "abcdefgh", "abcdefgh-ijkl") == MASK


def test_looks_secret_and_shown() -> None:
    assert looks_secret(KEY)
    assert looks_secret("xoxb-12-34-abcdef")
    assert not looks_secret("1400000000")
    assert not looks_secret("mars")
    assert not looks_secret("U012ABCDEF")
    assert shown("mars") == "'mars'"
    assert KEY not in shown(KEY)
    assert "secret" in shown(KEY)
    assert len(shown("x" * 200)) < 50
