"""Secrets found elsewhere, masked where they reappear: URL, headers, bodies, error text.

Body masks keep the length of what they replace, so chunk sizes stay true; a
body with a ``Content-Encoding`` is decoded first.
"""

from rawtap.producer._redact._rules import MIN_SECRET_LEN, REDACTED, Masking, mask
from rawtap.shared import BodyDecodeError, decode_bounded, decode_chunks


def mask_bytes(data: bytes, found: Masking) -> tuple[bytes, int]:
    """``data`` with every spelling of every secret masked (same length), and the count.

    A body that ends inside a secret (it was cut) has that partial secret masked too.
    """
    count = 0
    probes = found.probes
    # Every spelling of a secret contains its probe: without any probe, none is here.
    whole = probes is None or any(probe in data for probe in probes)
    for variant in found.variants if whole else ():
        if variant in data:
            count += data.count(variant)
            data = data.replace(variant, mask(variant))
    if data and data[-1] in found.variant_bytes:
        last = data[-1:]
        for variant in found.variants:
            # The longest prefix of the variant the data ends with (at least MIN_SECRET_LEN):
            # only prefixes ending in the data's last byte can, found by rfind, not a loop.
            j = variant.rfind(last, 0, len(variant) - 1)
            while j + 1 >= MIN_SECRET_LEN:
                k = j + 1
                if data.endswith(variant[:k]):
                    data = data[:-k] + b"*" * k
                    count += 1
                    break
                j = variant.rfind(last, 0, j)
    return data, count


def mask_text(text: str, found: Masking) -> tuple[str, int]:
    """``text`` with every spelling of every secret replaced by ``[REDACTED]``, and the count."""
    count = 0
    for value in found.text_variants:
        if value in text:
            count += text.count(value)
            text = text.replace(value, REDACTED)
    return text, count


def mask_headers(headers_: list[list[str]], found: Masking, place: str) -> None:
    """Secrets echoed in any header value replaced, in place (one search when none is)."""
    joined = "\n".join([pair[1] for pair in headers_])
    if not any(variant in joined for variant in found.text_variants):
        return
    for pair in headers_:
        if pair[1] == REDACTED:
            continue
        pair[1], n = mask_text(pair[1], found)
        found.hit(place, n)


# -- the response body -----------------------------------------------------------------


class Body:
    """The response body as it will be stored, and what had to be done to it."""

    __slots__ = ("body", "chunks", "decoded_from", "encoded_size", "note")

    def __init__(self, body: bytes, chunks: list[list[int]]) -> None:
        self.body = body
        self.chunks = chunks
        self.decoded_from: str | None = None
        self.encoded_size: int | None = None
        self.note: str | None = None


def response_body(
    body: bytes,
    chunks: list[list[int]],
    coding: str | None,
    found: Masking,
    limit: int,
) -> Body:
    """The body with secrets masked; a compressed one is decoded first (at most ``limit``).

    Kept byte-exact (still compressed) when no secret is in it. Otherwise the
    decoded bytes are stored with the masks, and ``decoded_from`` names the
    coding that was undone. A body that cannot be checked (corrupt, missing
    library, decoding passes ``limit``) is stored decoded up to ``limit`` and
    masked, or withheld when it cannot be decoded at all.
    """
    out = Body(body, chunks)
    if not coding or not coding.strip() or coding.strip().lower() == "identity" or not body:
        out.body, n = mask_bytes(body, found)
        found.hit("body", n)
        return out
    try:
        decoded, complete = decode_bounded(body, coding, limit)
    except BodyDecodeError as e:
        out.body, out.chunks = b"", []
        out.encoded_size = len(body)
        out.note = (
            f"response body withheld: its Content-Encoding {coding!r} could not be "
            f"checked for credentials ({e})"
        )
        found.hit("body")
        return out
    masked, n = mask_bytes(decoded, found)
    if not n and complete:
        return out  # nothing to mask: the provider's bytes, unchanged
    out.decoded_from = coding
    out.encoded_size = len(body)
    out.body = masked
    found.hit("body", n)
    if not complete:
        out.note = (
            f"response body decoded from {coding!r} passed {limit} bytes; "
            f"its first {limit} decoded bytes are stored"
        )
    if chunks:
        out.chunks = _decoded_chunks(body, chunks, coding, len(masked), complete)
    return out


def _decoded_chunks(
    body: bytes, chunks: list[list[int]], coding: str, size: int, complete: bool
) -> list[list[int]]:
    """Chunk boundaries in the decoded body: each chunk keeps the bytes its arrival completed."""
    if not complete:
        return [[chunks[0][0], size]]  # past the cap only the first arrival time is kept
    pieces = []
    pos = 0
    for _offset, length in chunks:
        pieces.append(body[pos : pos + length])
        pos += length
    try:
        decoded = decode_chunks(pieces, coding)
    except BodyDecodeError:
        return [[chunks[0][0], size]]
    out = [[offset, len(piece)] for (offset, _), piece in zip(chunks, decoded, strict=False)]
    total = sum(c[1] for c in out)
    if total != size and out:
        out[-1][1] += size - total
    return out
