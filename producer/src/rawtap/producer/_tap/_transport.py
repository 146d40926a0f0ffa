"""The wrapping transports and the response-stream tee, for httpx2 and legacy httpx.

The logic lives in plain mixins; :func:`flavour` builds, once per httpx
package, concrete classes that also inherit that package's ``BaseTransport``
and ``SyncByteStream`` (its ``Response`` checks ``isinstance`` on streams), so
rawtap never imports httpx or httpx2 itself: the package comes from the client
or transport being wrapped.

The tee yields the very chunk objects the inner stream produced, as soon as
it produced them: no read-ahead, no queue. Per chunk it appends the chunk and
its offset to two lists. Error responses (status >= 400) are the one place the
tap reads ahead: SDKs close retried error bodies unread, so a small error body
is read here and replayed, identical, to the SDK.
"""

import asyncio
import sys
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from types import ModuleType
from typing import Any, NamedTuple

from rawtap.producer._tap._capture import (
    DRAIN_LIMIT,
    DRAIN_TIMEOUT_S,
    ERROR_BODY_LIMIT,
    Capture,
    Tap,
    count_failure,
)

_clock_import = time.perf_counter_ns


def _content_length(response: Any) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _already_read(response: Any, capture: Capture) -> bool:
    """A response built with its content (mock transports, ASGI/WSGI) is recorded at once."""
    content = getattr(response, "_content", None)
    if not isinstance(content, bytes):
        return False
    if content:
        capture.chunks.append(content)
        capture.offsets.append(capture.first_byte or 0)
    capture.at_eof()
    return True


def _wants_prefetch(response: Any) -> bool:
    if response.status_code < 400:
        return False
    length = _content_length(response)
    return length is None or length <= ERROR_BODY_LIMIT


# -- sync ----------------------------------------------------------------------


class _SyncTee:
    """Tees a sync response stream into a :class:`Capture`."""

    def __init__(
        self,
        inner: Any,
        capture: Capture,
        it: Iterator[bytes] | None = None,
        replay: list[bytes] | None = None,
        replay_error: BaseException | None = None,
    ) -> None:
        self._inner = inner
        self._capture = capture
        self._it = it
        self._replay = replay
        self._replay_error = replay_error
        self._started = False
        # Cleared by the cyclic GC before it finalizes garbage: a close that finds it
        # None comes from a finalizer, not from the caller (Capture.closed).
        self._alive = weakref.ref(self)

    def __iter__(self) -> Iterator[bytes]:
        self._started = True
        capture = self._capture
        if self._replay is not None:
            replay, self._replay = self._replay, None
            yield from replay
            error = self._replay_error
            if error is not None:
                self._replay_error = None
                raise error
        it = self._it
        if it is None:
            it = iter(self._inner)
            self._it = it
        chunks_append = capture.chunks.append
        offsets_append = capture.offsets.append
        t0 = capture.t0
        clock = _clock_import
        room = capture.room
        try:
            for chunk in it:
                if room > 0:
                    room -= len(chunk)
                    chunks_append(chunk)
                    offsets_append(clock() - t0)
                else:
                    # Past max_record_bytes: the record is cut anyway; do not hold the rest
                    # (only the last two pieces, to see the terminal event on close).
                    capture.unkept += len(chunk)
                    capture.tail = (capture.tail[1], chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            capture.read_failed(exc)
            raise
        if not capture.done:
            capture.at_eof()

    def close(self) -> None:
        capture = self._capture
        try:
            if self._it is not None and capture.should_drain():
                self._drain(self._it, capture)
            capture.closed(self._alive() is not None)
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(capture.tap.recorder, "close")
        it = self._it
        if it is not None and not self._started:
            close_it = getattr(it, "close", None)
            if close_it is not None:
                close_it()
        self._inner.close()

    def __del__(self) -> None:
        try:
            capture = self._capture
            if not capture.done:
                capture.abandoned()
        except Exception:  # noqa: BLE001, S110 - a finalizer must not raise
            pass

    @staticmethod
    def _drain(it: Iterator[bytes], capture: Capture) -> None:
        # The SDK stopped at the provider's terminal event (OpenAI sync streams stop at
        # [DONE]): read what little is left (a gzip trailer, the end of the chunked body)
        # so the record is byte-exact and the connection can go back to the pool.
        total = 0
        t0 = capture.t0
        try:
            while total <= DRAIN_LIMIT:
                chunk = next(it)
                capture.chunks.append(chunk)
                capture.offsets.append(_clock_import() - t0)
                total += len(chunk)
        except StopIteration:
            capture.eof = True
        except Exception:  # noqa: BLE001, S110 - without the tap nobody would have read it
            pass


def _prefetch_sync(
    stream: Any, capture: Capture
) -> tuple[Iterator[bytes], list[bytes], BaseException | None]:
    """Read an error body (up to the limit) into the capture; return what to replay."""
    it = iter(stream)
    got: list[bytes] = []
    total = 0
    t0 = capture.t0
    error: BaseException | None = None
    try:
        while total < ERROR_BODY_LIMIT:
            chunk = next(it)
            capture.chunks.append(chunk)
            capture.offsets.append(_clock_import() - t0)
            got.append(chunk)
            total += len(chunk)
    except StopIteration:
        capture.at_eof()
    except Exception as exc:  # noqa: BLE001 - replayed to the SDK exactly when it reads
        error = exc
        capture.read_failed(exc)
    return it, got, error


class _SyncTransport:
    """A transport that records every request it forwards to ``inner``."""

    def __init__(self, inner: Any, tap: Tap, tee_cls: type[_SyncTee]) -> None:
        self._rawtap_inner = inner
        self._rawtap_tap = tap
        self._rawtap_tee = tee_cls

    @property
    def inner(self) -> Any:
        """The wrapped transport."""
        return self._rawtap_inner

    def handle_request(self, request: Any) -> Any:
        capture = self._rawtap_tap.begin(request)
        if capture is None:
            return self._rawtap_inner.handle_request(request)
        try:
            response = self._rawtap_inner.handle_request(request)
        except BaseException as exc:
            capture.transport_failed(exc)
            raise
        try:
            capture.head(response)
            stream = response.stream
            if _already_read(response, capture):
                pass
            elif _wants_prefetch(response):
                try:
                    it, got, error = _prefetch_sync(stream, capture)
                except BaseException as exc:
                    # Interrupted while reading ahead: the SDK never gets this response.
                    capture.read_failed(exc)
                    stream.close()
                    raise
                response.stream = self._rawtap_tee(stream, capture, it, got, error)
            else:
                response.stream = self._rawtap_tee(stream, capture)
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(capture.tap.recorder, "response")
        return response

    def close(self) -> None:
        self._rawtap_inner.close()

    def __enter__(self) -> Any:
        self._rawtap_inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._rawtap_inner.__exit__(*args)

    def __getattr__(self, name: str) -> Any:
        # Anything else (e.g. ``_pool`` that some code inspects) is the inner transport's.
        if name.startswith("_rawtap_"):
            raise AttributeError(name)
        return getattr(self._rawtap_inner, name)


# -- async ---------------------------------------------------------------------


def _in_asyncgen_finalizer() -> bool:
    """True inside a task asyncio made to close an async generator nobody closed.

    A dropped async generator is not closed where it is dropped (a ``break``
    out of ``async for`` closes nothing): its finalizer hook, or
    ``shutdown_asyncgens`` as the loop ends, runs ``agen.aclose()`` later, each
    in a task of its own. A close from there is asyncio's, not the caller's.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False  # no running asyncio loop (trio): no such tasks either
    return task is not None and type(task.get_coro()).__name__ == "async_generator_athrow"


class _AsyncTee:
    """Tees an async response stream into a :class:`Capture`."""

    def __init__(
        self,
        inner: Any,
        capture: Capture,
        it: AsyncIterator[bytes] | None = None,
        replay: list[bytes] | None = None,
        replay_error: BaseException | None = None,
    ) -> None:
        self._inner = inner
        self._capture = capture
        self._it = it
        self._replay = replay
        self._replay_error = replay_error
        self._started = False
        # Cleared by the cyclic GC before it finalizes garbage: a close that finds it
        # None comes from a finalizer, not from the caller (Capture.closed).
        self._alive = weakref.ref(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._started = True
        capture = self._capture
        if self._replay is not None:
            replay, self._replay = self._replay, None
            for chunk in replay:
                yield chunk
            error = self._replay_error
            if error is not None:
                self._replay_error = None
                raise error
        it = self._it
        if it is None:
            it = self._inner.__aiter__()
            self._it = it
        chunks_append = capture.chunks.append
        offsets_append = capture.offsets.append
        t0 = capture.t0
        clock = _clock_import
        room = capture.room
        try:
            async for chunk in it:
                if room > 0:
                    room -= len(chunk)
                    chunks_append(chunk)
                    offsets_append(clock() - t0)
                else:
                    # Past max_record_bytes: the record is cut anyway; do not hold the rest
                    # (only the last two pieces, to see the terminal event on close).
                    capture.unkept += len(chunk)
                    capture.tail = (capture.tail[1], chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            capture.read_failed(exc)
            raise
        finally:
            if isinstance(it, AsyncGenerator):
                await it.aclose()
        if not capture.done:
            capture.at_eof()

    async def aclose(self) -> None:
        capture = self._capture
        try:
            if self._it is not None and capture.should_drain():
                await self._drain(self._it, capture)
            capture.closed(self._alive() is not None and not _in_asyncgen_finalizer())
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(capture.tap.recorder, "close")
        it = self._it
        if it is not None and not self._started and isinstance(it, AsyncGenerator):
            await it.aclose()
        await self._inner.aclose()

    def __del__(self) -> None:
        try:
            capture = self._capture
            if not capture.done:
                capture.abandoned()
        except Exception:  # noqa: BLE001, S110 - a finalizer must not raise
            pass

    @staticmethod
    async def _drain(it: AsyncIterator[bytes], capture: Capture) -> None:
        # As in the sync tee, bounded in time as well (the event loop must not wait).
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not asyncio (trio): no cheap deadline, so no drain
        total = 0
        t0 = capture.t0
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while total <= DRAIN_LIMIT:
                    chunk = await it.__anext__()
                    capture.chunks.append(chunk)
                    capture.offsets.append(_clock_import() - t0)
                    total += len(chunk)
        except StopAsyncIteration:
            capture.eof = True
        except Exception:  # noqa: BLE001, S110 - without the tap nobody would have read it
            pass


async def _prefetch_async(
    stream: Any, capture: Capture
) -> tuple[AsyncIterator[bytes], list[bytes], BaseException | None]:
    it = stream.__aiter__()
    got: list[bytes] = []
    total = 0
    t0 = capture.t0
    error: BaseException | None = None
    try:
        while total < ERROR_BODY_LIMIT:
            chunk = await it.__anext__()
            capture.chunks.append(chunk)
            capture.offsets.append(_clock_import() - t0)
            got.append(chunk)
            total += len(chunk)
    except StopAsyncIteration:
        capture.at_eof()
    except Exception as exc:  # noqa: BLE001 - replayed to the SDK exactly when it reads
        error = exc
        capture.read_failed(exc)
    return it, got, error


class _AsyncTransport:
    """An async transport that records every request it forwards to ``inner``."""

    def __init__(self, inner: Any, tap: Tap, tee_cls: type[_AsyncTee]) -> None:
        self._rawtap_inner = inner
        self._rawtap_tap = tap
        self._rawtap_tee = tee_cls

    @property
    def inner(self) -> Any:
        """The wrapped transport."""
        return self._rawtap_inner

    async def handle_async_request(self, request: Any) -> Any:
        capture = self._rawtap_tap.begin(request)
        if capture is None:
            return await self._rawtap_inner.handle_async_request(request)
        try:
            response = await self._rawtap_inner.handle_async_request(request)
        except BaseException as exc:
            capture.transport_failed(exc)
            raise
        try:
            capture.head(response)
            stream = response.stream
            if _already_read(response, capture):
                pass
            elif _wants_prefetch(response):
                try:
                    it, got, error = await _prefetch_async(stream, capture)
                except BaseException as exc:
                    capture.read_failed(exc)
                    await stream.aclose()
                    raise
                response.stream = self._rawtap_tee(stream, capture, it, got, error)
            else:
                response.stream = self._rawtap_tee(stream, capture)
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(capture.tap.recorder, "response")
        return response

    async def aclose(self) -> None:
        await self._rawtap_inner.aclose()

    async def __aenter__(self) -> Any:
        await self._rawtap_inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self._rawtap_inner.__aexit__(*args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_rawtap_"):
            raise AttributeError(name)
        return getattr(self._rawtap_inner, name)


# -- per-package concrete classes ----------------------------------------------


class Flavour(NamedTuple):
    """The tap's classes for one httpx package (``httpx2`` or ``httpx``)."""

    module: ModuleType
    transport: type[_SyncTransport]
    async_transport: type[_AsyncTransport]
    tee: type[_SyncTee]
    async_tee: type[_AsyncTee]

    def wrap(self, inner: Any, tap: Tap) -> Any:
        """A tap around a sync transport of this package."""
        return self.transport(inner, tap, self.tee)

    def wrap_async(self, inner: Any, tap: Tap) -> Any:
        """A tap around an async transport of this package."""
        return self.async_transport(inner, tap, self.async_tee)


_flavours: dict[str, Flavour] = {}


def flavour(package: str) -> Flavour | None:
    """The classes for ``package`` (already imported by the host), or None if it is not."""
    cached = _flavours.get(package)
    if cached is not None:
        return cached
    module = sys.modules.get(package)
    if module is None:
        return None
    ns = {"__module__": __name__}
    made = Flavour(
        module,
        type("TapTransport", (_SyncTransport, module.BaseTransport), ns),
        type("AsyncTapTransport", (_AsyncTransport, module.AsyncBaseTransport), ns),
        type("TapStream", (_SyncTee, module.SyncByteStream), ns),
        type("AsyncTapStream", (_AsyncTee, module.AsyncByteStream), ns),
    )
    _flavours[package] = made
    return made


def package_of(obj: object) -> str | None:
    """``httpx2`` or ``httpx``: the package whose class ``obj`` is (or subclasses).

    Judged by identity against the loaded packages, not by ``__module__``: the
    openai SDK renames ``httpx2.BaseTransport.__module__`` to ``openai`` when
    it is imported, which would make a user's own transport unrecognisable.
    """
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is None:
            continue
        bases = tuple(
            getattr(module, attr)
            for attr in ("BaseTransport", "AsyncBaseTransport", "Client", "AsyncClient")
            if isinstance(getattr(module, attr, None), type)
        )
        if bases and isinstance(obj, bases):
            return name
    for cls in type(obj).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in ("httpx2", "httpx"):
            return root
    return None


def is_tap(transport: object) -> bool:
    """True if ``transport`` is one of rawtap's taps."""
    return isinstance(transport, _SyncTransport | _AsyncTransport)
