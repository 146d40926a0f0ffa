"""Printing stored strings to a terminal safely.

Session ids, models, error texts and bodies come from producers and providers:
a raw ESC (or another control character) in one of them would reach the
operator's terminal and could recolour, retitle or rewrite the screen. Every
human-readable line the CLI prints goes through :func:`printable`.
"""

import unicodedata

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control and format characters (ESC, DEL, C1, bidi overrides …) escaped.

    With ``keep_newlines`` line feeds and tabs pass (multi-line bodies), CR does not.
    """
    keep = {"\n", "\t"} if keep_newlines else set()
    if text.isprintable() and not keep:
        return text
    return "".join(
        ch
        if ch in keep or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
        else _escape(ch)
        for ch in text
    )
