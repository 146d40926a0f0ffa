"""Reading a Redis reply value as text, whatever the client's ``decode_responses``."""


def reply_text(value: object) -> str:
    """``value`` (a Redis reply or stream-entry field) as text.

    Bytes are decoded as UTF-8 with undecodable bytes replaced (an id, a group
    name or a dead letter's error must be shown, never raise); a missing field
    (None) is ``""``; anything else (a ``str`` from a client that decodes
    replies, an ``int``) is ``str(value)``.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
