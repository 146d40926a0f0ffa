"""Per httpx package (httpx2 or legacy httpx), the tap's concrete classes.

The logic lives in plain mixins (:mod:`._transport`); :func:`flavour` builds,
once per httpx package, concrete classes that also inherit that package's
``BaseTransport`` and ``SyncByteStream`` (its ``Response`` checks
``isinstance`` on streams), so rawtap never imports httpx or httpx2 itself:
the package comes from the client or transport being wrapped.
"""

import sys
from types import ModuleType
from typing import Any, NamedTuple

from rawtap.producer._tap._capture import Tap
from rawtap.producer._tap._transport import AsyncTee, AsyncTransport, SyncTee, SyncTransport

# -- per-package concrete classes ----------------------------------------------


class Flavour(NamedTuple):
    """The tap's classes for one httpx package (``httpx2`` or ``httpx``)."""

    module: ModuleType
    transport: type[SyncTransport]
    async_transport: type[AsyncTransport]
    tee: type[SyncTee]
    async_tee: type[AsyncTee]

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
    ns = {"__module__": SyncTransport.__module__}  # as before they moved here
    made = Flavour(
        module,
        type("TapTransport", (SyncTransport, module.BaseTransport), ns),
        type("AsyncTapTransport", (AsyncTransport, module.AsyncBaseTransport), ns),
        type("TapStream", (SyncTee, module.SyncByteStream), ns),
        type("AsyncTapStream", (AsyncTee, module.AsyncByteStream), ns),
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
    return isinstance(transport, SyncTransport | AsyncTransport)
