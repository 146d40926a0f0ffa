"""The field names of a Redis stream entry, defined once for producer and consumer.

A record entry (see :mod:`rawtap.shared._codec`)::

    v     schema version, ASCII digits
    rid   record id (readable without decoding, for dead letters and dedup)
    env   orjson object: every Record field except the two bodies
    req   request body bytes
    body  response body bytes

A control entry (a producer report, :mod:`rawtap.shared._report`) has
``kind`` (``report``) and ``env`` (the report as JSON) instead.
"""

ENTRY_VERSION = b"v"
ENTRY_RECORD_ID = b"rid"
ENTRY_ENVELOPE = b"env"
ENTRY_REQUEST_BODY = b"req"
ENTRY_BODY = b"body"
ENTRY_KIND = b"kind"
"""Present only on control entries; its value says which kind (:data:`KIND_REPORT`)."""
KIND_REPORT = b"report"
