"""PostgreSQL driver errors as one safe line (shared by the store's dialect, the shared rate
budget and the health check)."""

from __future__ import annotations

from bot.dsn import DatabaseUrl, redact


def describe_error(exc: BaseException, url: DatabaseUrl) -> str:
    """One line about a driver error: its first line (DETAIL lines may quote stored values),
    the SQLSTATE when there is one, and `url`'s password masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        text = f"{text} (SQLSTATE {sqlstate})"
    return redact(text, url)
