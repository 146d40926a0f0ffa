"""Undoing a response's ``Content-Encoding``: gzip, deflate, and brotli/zstd when installed.

Records keep the body exactly as the provider sent it, so a gzip-encoded reply is
stored gzip-encoded (``rawtap replay`` must send the same bytes back). Whatever
reads the *content* — derivation, ``rawtap show`` — decodes it here first.

Decoding is incremental (:class:`BodyDecoder`), so a streamed body can be decoded
chunk by chunk and each decoded piece keeps its chunk's arrival time. It is
tolerant the way browsers are: a gzip stream cut before its trailer (an
abandoned response, a truncated record) yields the bytes that were there.
"""

import zlib
from collections.abc import Callable, Iterable

from rawtap.shared._errors import RawtapError


class BodyDecodeError(RawtapError, ValueError):
    """A body cannot be decoded: corrupt data, an unknown encoding, or a missing optional library.

    The message names the encoding and, for a missing library, the extra to install.
    """


_IDENTITY = frozenset({"", "identity"})


def content_encodings(header: str | None) -> list[str]:
    """The codings of a ``Content-Encoding`` value, in the order they were applied."""
    if not header:
        return []
    return [c.strip().lower() for c in header.split(",") if c.strip().lower() not in _IDENTITY]


class _Zlib:
    """gzip, or deflate (zlib-wrapped or raw: servers send both; the first two bytes tell)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._obj: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            cmf, flg = self._head[0], self._head[1]
            wrapped = cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0
            self._obj = zlib.decompressobj(15 if wrapped else -15)
            data, self._head = self._head, b""
        out = self._obj.decompress(data)
        while self._gzip and self._obj.eof and self._obj.unused_data[:2] == b"\x1f\x8b":
            # Concatenated gzip members are one valid gzip body; other trailing bytes are ignored.
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(31)
            out += self._obj.decompress(rest)
        return out

    def flush(self) -> bytes:
        # No check that the stream ended: a missing trailer is tolerated on purpose.
        if self._obj is None:
            if not self._head:
                return b""
            self._obj = zlib.decompressobj(-15)
            head, self._head = self._head, b""
            return self._obj.decompress(head) + self._obj.flush()
        return self._obj.flush()


class _Brotli:
    def __init__(self) -> None:
        try:
            import brotli
        except ImportError as e:
            raise BodyDecodeError(
                "body is brotli-encoded (br); install the 'brotli' package "
                "(pip install 'rawtap-consumer[compression]')"
            ) from e
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data))

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        try:
            import zstandard
        except ImportError as e:
            raise BodyDecodeError(
                "body is zstd-encoded; install the 'zstandard' package "
                "(pip install 'rawtap-consumer[compression]')"
            ) from e
        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        return bytes(self._obj.decompress(data))

    def flush(self) -> bytes:
        return b""


_FACTORIES: dict[str, Callable[[], "_Zlib | _Brotli | _Zstd"]] = {
    "gzip": lambda: _Zlib(gzip=True),
    "x-gzip": lambda: _Zlib(gzip=True),
    "deflate": lambda: _Zlib(gzip=False),
    "br": _Brotli,
    "zstd": _Zstd,
}


class BodyDecoder:
    """Incrementally undoes a list of content codings (as :func:`content_encodings` returns).

    ``feed(chunk)`` returns the decoded bytes that chunk completed; ``flush()``
    returns what is left at the end. Raises :class:`BodyDecodeError`.
    """

    def __init__(self, encodings: Iterable[str]) -> None:
        codings = list(encodings)
        unknown = [c for c in codings if c not in _FACTORIES]
        if unknown:
            raise BodyDecodeError(f"unknown content encoding {unknown[0]!r}")
        # Applied first = undone last.
        self._stages = [_FACTORIES[c]() for c in reversed(codings)]
        self._codings = codings

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body."""
        try:
            for stage in self._stages:
                data = stage.feed(data)
        except Exception as e:  # zlib.error, brotli.error, zstandard.ZstdError
            raise BodyDecodeError(f"body is not valid {'+'.join(self._codings)} data: {e}") from e
        return data

    def flush(self) -> bytes:
        """The decoded bytes still held at the end of the body."""
        out = b""
        try:
            for stage in self._stages:
                out = (stage.feed(out) if out else b"") + stage.flush()
        except Exception as e:
            raise BodyDecodeError(f"body is not valid {'+'.join(self._codings)} data: {e}") from e
        return out


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """``body`` with its ``Content-Encoding`` undone (unchanged when there is none)."""
    codings = content_encodings(content_encoding)
    if not codings or not body:
        return body
    decoder = BodyDecoder(codings)
    return decoder.feed(body) + decoder.flush()


def decode_chunks(chunks: Iterable[bytes], content_encoding: str | None) -> list[bytes]:
    """Each chunk's decoded bytes (one entry per chunk; the tail is added to the last)."""
    pieces = list(chunks)
    codings = content_encodings(content_encoding)
    if not codings:
        return pieces
    decoder = BodyDecoder(codings)
    out = [decoder.feed(piece) for piece in pieces]
    tail = decoder.flush()
    if tail:
        if out:
            out[-1] += tail
        else:
            out.append(tail)
    return out


_ZLIB_SLICE = 512
"""Compressed bytes fed to zlib at a time when bounded: deflate expands at most ~1032:1."""


def _bounded_stage(data: bytes, coding: str, limit: int) -> tuple[bytes, bool]:
    if coding == "br":
        stage = _Brotli()
        try:
            out = bytes(stage._obj.process(data, output_buffer_limit=limit + 1))
        except Exception as e:
            raise BodyDecodeError(f"body is not valid br data: {e}") from e
        return out[:limit], len(out) <= limit
    if coding == "zstd":
        import io

        _Zstd()  # the import check, with its message
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(data), read_across_frames=True
        )
        try:
            out = reader.read(limit + 1)
        except Exception as e:
            raise BodyDecodeError(f"body is not valid zstd data: {e}") from e
        return out[:limit], len(out) <= limit
    decoder = BodyDecoder([coding])
    parts: list[bytes] = []
    size = 0
    for start in range(0, len(data), _ZLIB_SLICE):
        piece = decoder.feed(data[start : start + _ZLIB_SLICE])
        parts.append(piece)
        size += len(piece)
        if size > limit:
            return b"".join(parts)[:limit], False
    parts.append(decoder.flush())
    out = b"".join(parts)
    return out[:limit], len(out) <= limit


def decode_bounded(body: bytes, content_encoding: str | None, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` decoded bytes of ``body``, and whether that is all of it.

    Memory stays near ``limit`` whatever the compression ratio (a zip bomb
    stops at the cap). Raises :class:`BodyDecodeError` like :func:`decode_body`.
    """
    codings = content_encodings(content_encoding)
    if not codings or not body:
        return body, True
    unknown = [c for c in codings if c not in _FACTORIES]
    if unknown:
        raise BodyDecodeError(f"unknown content encoding {unknown[0]!r}")
    complete = True
    for coding in reversed(codings):
        body, whole = _bounded_stage(body, coding, limit)
        complete = complete and whole
    return body, complete
