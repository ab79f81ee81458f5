"""Text a server sent, made safe to put in an exception message or a log line.

A server controls its error descriptions, ``errors[]`` entries, headers and JSON values. Put into a
message as is, a 5 MB description floods the task log, and CR/LF or ANSI escape codes forge log lines
(for example a fake "Marking task as SUCCESS"). Everything server-sent that reaches a message or a log goes
through :func:`server_text` first; interaction ids go through :func:`interaction_id`.
"""

from __future__ import annotations

import re
from typing import TypeVar

T = TypeVar("T")

MAX_SERVER_TEXT = 300
"""Characters of server text kept in a message; the rest is counted, not shown."""

_INTERACTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,99}")
"""The Directory API's ``x-fapi-interaction-id`` pattern (an RFC 4122 UUID fits it)."""


def server_text(value: object, limit: int = MAX_SERVER_TEXT) -> str:
    """``value`` as one bounded, escaped line: the inside of ``repr`` of its first ``limit`` characters.

    Control and other non-printable characters (CR, LF, ESC, bidi overrides, ...) come out as escapes such
    as ``\\n`` or ``\\x1b`` (and a backslash as two), so the text stays on one line and cannot colour or
    rewrite a terminal; printable non-ASCII text (``Não autorizado``) is kept as it is. Text longer than
    ``limit`` is cut and says how much was left out, so the result is at most about ``10 * limit``
    characters (every character escaped) plus that note.
    """
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:limit])[1:-1]
    if len(text) <= limit:
        return shown
    return f"{shown}... ({len(text) - limit:,} more characters not shown)"


def interaction_id(value: str | None, fallback: T) -> str | T:
    """The server's ``x-fapi-interaction-id`` if it is a well-formed id, else ``fallback`` (the id we sent).

    A malformed value (too long, control characters, anything outside ``[A-Za-z0-9-]``) is never shown.
    """
    if value is not None and _INTERACTION_ID.fullmatch(value):
        return value
    return fallback
