"""Credentials out of every record, on the writer thread; the wire is never touched.

The caller's path (the tap, ``Recorder.record``) only hands over references;
:func:`redact` runs inside ``serialize`` and decides what is stored:

* headers whose **name** looks like a credential (:class:`NameRule`) keep their
  name and auth scheme, their value becomes ``[REDACTED]``;
* in the URL, the user-info password, query parameters with credential names,
  a path segment after a credential-named segment (``/key/<v>``) and path
  segments shaped like well-known API keys;
* every credential value found that way (at least ``MIN_SECRET_LEN`` bytes), in
  its plain, URL-encoded and JSON-escaped spellings, and for Basic auth the
  decoded ``user:pass`` and password, is masked wherever it reappears: URL,
  header values, request body, response body (over the whole body, so across
  chunk boundaries; decoded first when it has a ``Content-Encoding``), error text.

Body masks keep the length of what they replace, so chunk sizes stay true. The
record says what was masked (``masked``, ``masked_in``), never the value, and
carries keyed digests of the longer secrets (``masked_digests``) so that the
consumer can mask a secret that only the derived text joins together (a key
echoed over several stream deltas). See docs/reliability.md.
"""

from rawtap.producer._redact._body import Body, mask_bytes, mask_headers, mask_text, response_body
from rawtap.producer._redact._headers import header_value, headers
from rawtap.producer._redact._record import Redacted, redact_record
from rawtap.producer._redact._rules import (
    DIGEST_MIN_LEN,
    MIN_SECRET_LEN,
    REDACTED,
    Masking,
    NameRule,
    mask,
    name_rule,
)
from rawtap.producer._redact._url import url

__all__ = [
    "DIGEST_MIN_LEN",
    "MIN_SECRET_LEN",
    "REDACTED",
    "Body",
    "Masking",
    "NameRule",
    "Redacted",
    "header_value",
    "headers",
    "mask",
    "mask_bytes",
    "mask_headers",
    "mask_text",
    "name_rule",
    "redact_record",
    "response_body",
    "url",
]
