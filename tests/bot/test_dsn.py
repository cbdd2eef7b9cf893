"""Database URLs: parsed, selected by their scheme, and never shown with their password: not in
`str()`/`repr()`, settings, error messages, nor the driver's log lines."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.audit import AuditError, open_store
from bot.config import ConfigError, load_settings
from bot.dsn import DatabaseUrl, is_database_url, redact, scrub_logs_of

SECRET = "pw-Zq8#x@y:z/%"
URL = f"postgresql://roombot:{quote(SECRET, safe='')}@db.internal:5432/audit?sslmode=require"


def test_the_text_forms_hide_the_password() -> None:
    url = DatabaseUrl(URL)
    for text in (str(url), repr(url), url.redacted, f"{url}", f"{url!r}"):
        assert SECRET not in text
        assert quote(SECRET, safe="") not in text
        assert "roombot:***@db.internal:5432/audit?sslmode=require" in text
    assert url.secret() == URL
    assert url.password == SECRET


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgres://u:p@h/db", "postgres://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql:///db?host=/run/pg&password=hunter2",
            "postgresql:///db?host=/run/pg&password=***",
        ),
        ("POSTGRESQL://u:p@h/db", "POSTGRESQL://u:***@h/db"),
    ],
)
def test_redacted_forms(text: str, shown: str) -> None:
    assert DatabaseUrl(text).redacted == shown


@pytest.mark.parametrize(
    "text", ["postgresql://u:pa@ss@h/db", "postgresql://u:pa#ss@h/db", "postgresql://u:p/a@ss@h/db"]
)
def test_a_password_not_encoded_as_it_should_be_is_refused_hidden_whole(text: str) -> None:
    with pytest.raises(ValueError, match="percent-encode") as info:
        DatabaseUrl(text)
    assert "postgresql://u:***@h/db" in str(info.value)


@pytest.mark.parametrize(
    ("value", "selects"),
    [
        ("postgresql://h/db", True),
        ("postgres://h/db", True),
        (" PostgreSQL://h/db", True),
        ("roombot-audit.sqlite3", False),
        ("/var/lib/roombot/audit.sqlite3", False),
        ("postgresql.sqlite3", False),
        ("mysql://h/db", False),
        (":memory:", False),
    ],
)
def test_which_targets_select_postgresql(value: str, selects: bool) -> None:
    assert is_database_url(value) is selects


@pytest.mark.parametrize(
    "bad",
    [
        "postgresql://u:secretpw@h:99999/db",
        "postgresql://u:secretpw@",
        "postgresql://u:secret/pw@h/db",  # an unencoded "/" ends the host part early
    ],
)
def test_a_malformed_url_is_refused_without_echoing_the_password(bad: str) -> None:
    with pytest.raises(ValueError, match="database URL") as info:
        DatabaseUrl(bad)
    assert "secretpw" not in str(info.value)


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="*"),
        min_size=1,
        max_size=40,
    )
)
def test_no_password_survives_redaction(password: str) -> None:
    url = DatabaseUrl(f"postgresql://someone:{quote(password, safe='')}@host:5432/db")
    assert url.password == password
    assert url.redacted == "postgresql://someone:***@host:5432/db"
    # Control characters separate the forms: the alphabet has none, so no form crosses one.
    message = "\n".join([password, quote(password, safe=""), quote(password)])
    assert redact(message, url) == "***\n***\n***"


def test_settings_take_a_url_and_never_print_its_password() -> None:
    settings = load_settings(None, roombot_audit_db=URL)
    assert isinstance(settings.roombot_audit_db, DatabaseUrl)
    assert settings.roombot_audit_db.secret() == URL
    for text in (str(settings), repr(settings), settings.model_dump_json()):
        assert SECRET not in text
        assert quote(SECRET, safe="") not in text
    # A SQLite path is still a path, exactly as before.
    plain = load_settings(None, roombot_audit_db="/var/lib/roombot/audit.sqlite3")
    assert str(plain.roombot_audit_db) == "/var/lib/roombot/audit.sqlite3"
    assert not isinstance(plain.roombot_audit_db, DatabaseUrl)


def test_a_bad_url_setting_is_one_line_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, roombot_audit_db="postgresql://u:secretpw@h:notaport/db")
    assert str(info.value).startswith("ROOMBOT_AUDIT_DB: malformed database URL")
    assert "secretpw" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", "ROOMBOT_LEASE_S: must be between 5 and 600"),
        ("601", "ROOMBOT_LEASE_S: must be between 5 and 600"),
        ("soon", "ROOMBOT_LEASE_S: must be a number"),
    ],
)
def test_lease_setting_is_bounded(value: str, message: str) -> None:
    assert load_settings(None).roombot_lease_s == 30.0
    assert load_settings(None, roombot_lease_s="12.5").roombot_lease_s == 12.5
    with pytest.raises(ConfigError) as info:
        load_settings(None, roombot_lease_s=value)
    assert str(info.value) == message


@pytest.mark.postgres
async def test_a_refused_login_is_an_audit_error_without_the_password(pg_server: str) -> None:
    wrong = DatabaseUrl(pg_server.replace("@127.0.0.1", "x@127.0.0.1", 1))  # a wrong password
    with pytest.raises(AuditError, match="password authentication failed") as info:
        await open_store(wrong)
    assert wrong.password is not None
    assert wrong.password not in str(info.value)
    assert "***" in str(info.value)
    assert info.value.__cause__ is None  # no driver exception chained with more text


async def test_an_unreachable_server_is_an_audit_error_naming_it_redacted() -> None:
    url = "postgresql://roombot:s3cret-pw@127.0.0.1:9/audit"
    with pytest.raises(
        AuditError, match=r"cannot open the audit database .*:\*\*\*@127\.0\.0\.1:9"
    ):
        await open_store(url)


def test_driver_log_lines_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    url = DatabaseUrl("postgresql://roombot:very-secret-pw@h/db")
    scrub_logs_of(url, "psycopg.pool")
    with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
        logging.getLogger("psycopg.pool").warning("error connecting with %s", url.secret())
    assert "very-secret-pw" not in caplog.text
    assert "roombot:***@h/db" in caplog.text


# -- ROOMBOT_AUDIT_DB: a SQLite path or a PostgreSQL URL, and nothing else (issue 27, item 1) --

#: Each bad form with the fragments of its password that must never be shown.
BAD_TARGETS = [
    # libpq's key=value form is not a file name.
    ("host=db user=roombot password=Kv9pass-word dbname=roombot", ("Kv9pass", "pass-word")),
    # Misspelt or foreign schemes are not file names either.
    ("postgressql://roombot:Ty7secret-pw@db/roombot", ("Ty7secret", "secret-pw")),
    ("postgresql+psycopg://roombot:Ty7secret-pw@db/roombot", ("Ty7secret", "secret-pw")),
    ("mysql://roombot:Ty7secret-pw@db/roombot", ("Ty7secret", "secret-pw")),
    ("postgresql:/roombot:Ty7secret-pw@db/roombot", ("Ty7secret", "secret-pw")),
    # An unescaped "@" (or "/", "#") in the password: parsers disagree on where the host starts.
    ("postgresql://roombot:Ab3first@Zx9second@db/roombot", ("Ab3first", "Zx9second")),
    ("postgresql://roombot:Ab3first@Zx9sec/ond@db/roombot", ("Ab3first", "Zx9sec", "ond@db")),
    ("postgresql://roombot:Ab3first#Zx9second@db/roombot", ("Ab3first", "Zx9second")),
]


@pytest.mark.parametrize(("value", "fragments"), BAD_TARGETS)
def test_a_target_that_is_neither_path_nor_url_is_refused_in_one_line_without_its_password(
    value: str, fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, roombot_audit_db=value)
    message = str(info.value)
    assert message.startswith("ROOMBOT_AUDIT_DB: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment not in message


@pytest.mark.parametrize(("value", "fragments"), BAD_TARGETS)
def test_check_fails_a_bad_target_without_printing_its_password(
    value: str,
    fragments: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli import main

    monkeypatch.setenv("ROOMBOT_AUDIT_DB", value)
    assert main(["check"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "✗ settings" in text
    assert "ROOMBOT_AUDIT_DB: " in text
    assert "✓ audit trail" not in text
    for fragment in fragments:
        assert fragment not in text


@pytest.mark.parametrize(("value", "fragments"), BAD_TARGETS)
def test_other_subcommands_exit_2_with_one_line_naming_the_variable(
    value: str,
    fragments: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli import main

    monkeypatch.setenv("ROOMBOT_AUDIT_DB", value)
    assert main(["audit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("roombot audit: ROOMBOT_AUDIT_DB: ")
    for fragment in fragments:
        assert fragment not in err[0]


def test_serve_refuses_a_key_value_string_instead_of_making_a_file_of_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.cli import main

    monkeypatch.setenv("ROOMBOT_AUDIT_DB", BAD_TARGETS[0][0])
    assert main(["serve", "--http", "--port", "0"]) == 2
    text = capsys.readouterr().err
    assert any(
        line.startswith("roombot serve: ROOMBOT_AUDIT_DB: ") for line in text.splitlines()
    ), text
    assert "Kv9pass" not in text
    assert list(tmp_path.iterdir()) == []  # no SQLite file named after the string


@pytest.mark.parametrize(
    "value",
    [
        "roombot-audit.sqlite3",
        "/var/lib/roombot/audit.sqlite3",
        "data/audit:2024.sqlite3",
        ":memory:",
    ],
)
def test_plain_paths_are_still_paths(value: str) -> None:
    settings = load_settings(None, roombot_audit_db=value)
    assert settings.roombot_audit_db == Path(value)


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zs"]),
        min_size=4,
        max_size=30,
    )
)
def test_a_raw_password_is_never_shown_and_never_taken_for_the_host(password: str) -> None:
    raw = f"postgresql://someone:{password}@dbhost:5432/db"
    assume_shown = "postgresql://someone:@dbhost:5432/db"
    if password in assume_shown:
        return  # the password is a piece of the URL around it: nothing to hide
    try:
        url = DatabaseUrl(raw)
    except ValueError as exc:
        refusal = str(exc)
    else:
        refusal = ""
    if refusal:
        assert password not in refusal
        return
    assert password not in url.redacted
    assert urlsplit(url.secret()).hostname == "dbhost"
