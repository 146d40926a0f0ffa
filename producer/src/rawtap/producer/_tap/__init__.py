"""The capture tap: a wrapping httpx/httpx2 transport and ``instrument()`` for provider SDKs.

Private: the public surface is ``Recorder.instrument``, ``Recorder.session``,
``Recorder.transport`` and ``Recorder.async_transport``.
"""

from rawtap.producer._tap._capture import Tap
from rawtap.producer._tap._context import Session
from rawtap.producer._tap._flavour import flavour, package_of
from rawtap.producer._tap._instrument import instrument

__all__ = ["Session", "Tap", "async_transport", "instrument", "transport"]

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rawtap.producer._recorder import Recorder


def _flavour_for(inner: Any, package: str | None) -> Any:
    if inner is not None:
        found = package_of(inner)
        if found is None:
            raise TypeError(f"{type(inner)!r} is not an httpx2 or httpx transport")
        package = found
    if package is None:
        try:
            import httpx2  # noqa: F401 - the flavour is looked up by name below
        except ImportError:
            import httpx  # noqa: F401

            package = "httpx"
        else:
            package = "httpx2"
    else:
        __import__(package)
    made = flavour(package)
    if made is None:  # pragma: no cover - imported just above
        raise TypeError(f"{package} is not importable")
    return made


def transport(
    recorder: "Recorder",
    inner: Any = None,
    *,
    provider: str | None = None,
    package: str | None = None,
) -> Any:
    """A sync tap around ``inner`` (default: a new ``HTTPTransport()`` of ``package``)."""
    made = _flavour_for(inner, package)
    if inner is None:
        inner = made.module.HTTPTransport()
    return made.wrap(inner, Tap(recorder, provider))


def async_transport(
    recorder: "Recorder",
    inner: Any = None,
    *,
    provider: str | None = None,
    package: str | None = None,
) -> Any:
    """An async tap around ``inner`` (default: a new ``AsyncHTTPTransport()`` of ``package``)."""
    made = _flavour_for(inner, package)
    if inner is None:
        inner = made.module.AsyncHTTPTransport()
    return made.wrap_async(inner, Tap(recorder, provider))
