"""The wrapping transports and the response-stream tee, for httpx2 and legacy httpx.

They are plain mixins; :func:`rawtap.producer._tap._flavour.flavour` builds,
once per httpx package, concrete classes that also inherit that package's
``BaseTransport`` and ``SyncByteStream``.

These are the IO shells around :mod:`._core`: they read, the core decides.
The tee yields the very chunk objects the inner stream produced, as soon as
it produced them: no read-ahead, no queue; per chunk it calls
:meth:`Capture.keep`. Error responses (status >= 400) are the one place the
tap reads ahead: SDKs close retried error bodies unread, so a small error body
is read here and replayed, identical, to the SDK.
"""

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from rawtap.producer._tap._capture import DRAIN_TIMEOUT_S, Capture, Tap
from rawtap.producer._tap._capture import clock as _clock
from rawtap.producer._tap._core import Drain, Plan, Prefetch, TeeState, plan
from rawtap.producer._tap._handoff import count_failure

_PREFETCH, _TEE = Plan.PREFETCH, Plan.TEE  # module globals: cheaper than enum lookups per call

# -- sync ----------------------------------------------------------------------


class SyncTee:
    """Tees a sync response stream into a :class:`Capture` (the logic: :class:`TeeState`)."""

    def __init__(
        self,
        inner: Any,
        capture: Capture,
        it: Iterator[bytes] | None = None,
        replay: list[bytes] | None = None,
        replay_error: BaseException | None = None,
    ) -> None:
        self._inner = inner
        self._state = TeeState(capture, replay, replay_error)
        self._it = it
        # Cleared by the cyclic GC before it finalizes garbage: a close that finds it
        # None comes from a finalizer, not from the caller (Capture.closed).
        self._alive = weakref.ref(self)

    def __iter__(self) -> Iterator[bytes]:
        state = self._state
        replay = state.start()
        if replay is not None:
            yield from replay[0]
            if replay[1] is not None:
                raise replay[1]
        it = self._it
        if it is None:
            it = iter(self._inner)
            self._it = it
        capture = state.capture
        # Capture.keep, inlined while under the bound: a call (or even writing ``room``
        # back) per chunk would cost more than the rest of the tee. Past the bound keep()
        # takes over; before that Capture.sync_room() recomputes what this loop holds.
        chunks_append = capture.chunks.append
        offsets_append = capture.offsets.append
        t0 = capture.t0
        clock = _clock
        room = capture.room
        try:
            for chunk in it:
                if room > 0:
                    room -= len(chunk)
                    chunks_append(chunk)
                    offsets_append(clock() - t0)
                else:
                    capture.room = room
                    capture.keep(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            capture.read_failed(exc)
            raise
        state.ended()

    def close(self) -> None:
        state = self._state
        capture = state.capture
        try:
            if self._it is not None and capture.should_drain():
                _drain_sync(self._it, Drain(capture))
            capture.closed(self._alive() is not None)
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(capture.tap.recorder, "close")
        it = self._it
        if it is not None and not state.started:
            close_it = getattr(it, "close", None)
            if close_it is not None:
                close_it()
        self._inner.close()

    def __del__(self) -> None:
        state = self._state
        if not state.capture.done:
            state.finalized()


def _drain_sync(it: Iterator[bytes], drain: Drain) -> None:
    try:
        while drain.more():
            drain.feed(next(it))
    except StopIteration:
        drain.ended()
    except Exception:  # noqa: BLE001, S110 - see Drain
        pass


def _prefetch_sync(stream: Any, capture: Capture) -> tuple[Iterator[bytes], Prefetch]:
    """Read an error body (up to the limit) into the capture; return what to replay."""
    it = iter(stream)
    ahead = Prefetch(capture)
    try:
        while ahead.more():
            ahead.feed(next(it))
    except StopIteration:
        ahead.ended()
    except Exception as exc:  # noqa: BLE001 - replayed to the SDK exactly when it reads
        ahead.failed(exc)
    return it, ahead


class SyncTransport:
    """A transport that records every request it forwards to ``inner``."""

    def __init__(self, inner: Any, tap: Tap, tee_cls: type[SyncTee]) -> None:
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
            how = plan(response, capture)
            stream = response.stream
            if how is _PREFETCH:
                try:
                    it, ahead = _prefetch_sync(stream, capture)
                except BaseException as exc:
                    # Interrupted while reading ahead: the SDK never gets this response.
                    capture.read_failed(exc)
                    stream.close()
                    raise
                response.stream = self._rawtap_tee(stream, capture, it, ahead.got, ahead.error)
            elif how is _TEE:
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


class AsyncTee:
    """Tees an async response stream into a :class:`Capture` (the logic: :class:`TeeState`)."""

    def __init__(
        self,
        inner: Any,
        capture: Capture,
        it: AsyncIterator[bytes] | None = None,
        replay: list[bytes] | None = None,
        replay_error: BaseException | None = None,
    ) -> None:
        self._inner = inner
        self._state = TeeState(capture, replay, replay_error)
        self._it = it
        # Cleared by the cyclic GC before it finalizes garbage (see SyncTee).
        self._alive = weakref.ref(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        state = self._state
        replay = state.start()
        if replay is not None:
            for chunk in replay[0]:
                yield chunk
            if replay[1] is not None:
                raise replay[1]
        it = self._it
        if it is None:
            it = self._inner.__aiter__()
            self._it = it
        capture = state.capture
        # As in the sync tee (Capture.keep inlined under the bound).
        chunks_append = capture.chunks.append
        offsets_append = capture.offsets.append
        t0 = capture.t0
        clock = _clock
        room = capture.room
        try:
            async for chunk in it:
                if room > 0:
                    room -= len(chunk)
                    chunks_append(chunk)
                    offsets_append(clock() - t0)
                else:
                    capture.room = room
                    capture.keep(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            capture.read_failed(exc)
            raise
        finally:
            if isinstance(it, AsyncGenerator):
                await it.aclose()
        state.ended()

    async def aclose(self) -> None:
        state = self._state
        capture = state.capture
        try:
            if self._it is not None and capture.should_drain():
                await _drain_async(self._it, Drain(capture))
            capture.closed(self._alive() is not None and not _in_asyncgen_finalizer())
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(capture.tap.recorder, "close")
        it = self._it
        if it is not None and not state.started and isinstance(it, AsyncGenerator):
            await it.aclose()
        await self._inner.aclose()

    def __del__(self) -> None:
        state = self._state
        if not state.capture.done:
            state.finalized()


async def _drain_async(it: AsyncIterator[bytes], drain: Drain) -> None:
    # As in the sync tee, bounded in time as well (the event loop must not wait).
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # not asyncio (trio): no cheap deadline, so no drain
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while drain.more():
                drain.feed(await it.__anext__())
    except StopAsyncIteration:
        drain.ended()
    except Exception:  # noqa: BLE001, S110 - see Drain
        pass


async def _prefetch_async(stream: Any, capture: Capture) -> tuple[AsyncIterator[bytes], Prefetch]:
    it = stream.__aiter__()
    ahead = Prefetch(capture)
    try:
        while ahead.more():
            ahead.feed(await it.__anext__())
    except StopAsyncIteration:
        ahead.ended()
    except Exception as exc:  # noqa: BLE001 - replayed to the SDK exactly when it reads
        ahead.failed(exc)
    return it, ahead


class AsyncTransport:
    """An async transport that records every request it forwards to ``inner``."""

    def __init__(self, inner: Any, tap: Tap, tee_cls: type[AsyncTee]) -> None:
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
            how = plan(response, capture)
            stream = response.stream
            if how is _PREFETCH:
                try:
                    it, ahead = await _prefetch_async(stream, capture)
                except BaseException as exc:
                    capture.read_failed(exc)
                    await stream.aclose()
                    raise
                response.stream = self._rawtap_tee(stream, capture, it, ahead.got, ahead.error)
            elif how is _TEE:
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
