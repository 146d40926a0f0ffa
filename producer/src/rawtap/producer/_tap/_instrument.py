"""Installing the tap into an SDK client after it was built.

The SDK keeps its own httpx client (timeouts, proxies from the environment,
socket options, SSL context); the tap replaces that client's ``_transport``
and every ``_mounts`` value by a wrapper around it, so everything else stays
as the SDK configured it. Private attributes touched, per SDK (tested ranges
are the ``rawtap-producer`` extras):

- openai / anthropic: ``client._client`` (the httpx2 or httpx client), an
  instance attribute ``client.request`` wrapping the SDK's own method to open a
  call scope (one ``call_id`` for all retried attempts), and instance attributes
  ``copy`` / ``with_options`` that instrument the clients they derive;
- google-genai: ``client._api_client._httpx_client``,
  ``._async_httpx_client`` (its ``_client_for_running_loop``, one pool per event
  loop, and ``_loop_clients``), ``._use_aiohttp`` (forced off so async calls go
  through httpx2, where raw bytes can be seen), ``._request`` and
  ``._async_request`` (call scope around tenacity's retries);
- httpx / httpx2 clients: ``_transport`` and ``_mounts``.
"""

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from rawtap.producer._tap._capture import Tap
from rawtap.producer._tap._context import enter_call, exit_call
from rawtap.producer._tap._flavour import flavour, is_tap, package_of
from rawtap.producer._tap._handoff import count_failure
from rawtap.shared import PROVIDERS, LogOnce, Provider, provider_from_host

if TYPE_CHECKING:
    from rawtap.producer._recorder import Recorder

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

C = TypeVar("C")

_SCOPED = "_rawtap_scoped"


def instrument(recorder: "Recorder", client: C, *, provider: str | None = None) -> C:
    """Install the tap into ``client`` and return the same object (see ``Recorder.instrument``)."""
    known = _provider_of(client)
    if known is None:
        raise TypeError(
            f"rawtap cannot instrument {type(client).__module__}.{type(client).__qualname__}: "
            "pass an OpenAI/AsyncOpenAI, Anthropic/AsyncAnthropic or google.genai.Client, "
            "or an httpx2/httpx Client or AsyncClient"
        )
    sdk = known.sdk
    kind = sdk.kind if sdk is not None else "http"
    try:
        if sdk is None:
            tap_http_client(client, Tap(recorder, provider))
        elif sdk.layout == "stainless":
            name = provider or (sdk.name_by_host and _provider_by_host(client)) or known.name
            tap_http_client(getattr(client, "_client"), Tap(recorder, name))  # noqa: B009
            _scope_method(client, "request")
            _instrument_derived(recorder, client, provider)
        else:
            _instrument_genai(client, Tap(recorder, provider or known.name))
    except Exception:  # noqa: BLE001 - an SDK that moved its internals must still work, unrecorded
        count_failure(recorder, "instrument")
        _log_once.warning(
            "instrument-" + kind,
            "rawtap: could not instrument this %s client (its internals changed?); "
            "it works as before but is not recorded",
            kind,
            exc_info=True,
        )
    return client


_HTTP = Provider(name="http")
"""Stands for a plain httpx client: the tap names its provider by each request's host."""
_SDK_PROVIDERS = tuple(p for p in PROVIDERS if p.sdk is not None)


def _provider_of(client: object) -> Provider | None:
    """The provider whose SDK made ``client`` (``_HTTP`` for an httpx client), else None."""
    if package_of(client) is not None and hasattr(client, "_transport"):
        return _HTTP  # an httpx client, even one subclassed inside an SDK
    for cls in type(client).__mro__:
        root = cls.__module__
        for known in _SDK_PROVIDERS:
            sdk = known.sdk
            if sdk is not None and root.startswith(sdk.module):
                if sdk.layout == "genai" and not hasattr(client, "_api_client"):
                    return None  # a google.genai object that is not a Client
                return known
    return None


def _provider_by_host(client: Any) -> str | None:
    host = getattr(getattr(client, "base_url", None), "host", None) or ""
    return provider_from_host(str(host))


def tap_http_client(client: Any, tap: Tap) -> None:
    """Wrap ``client``'s transport and mounts (idempotent)."""
    package = package_of(client)
    made = flavour(package) if package else None
    if made is None:
        raise TypeError(f"{type(client)!r} is not an httpx2 or httpx client")
    wrap = made.wrap_async if isinstance(client, made.module.AsyncClient) else made.wrap
    transport = client._transport
    if not is_tap(transport):
        client._transport = wrap(transport, tap)
    mounts = client._mounts
    for pattern, mounted in list(mounts.items()):
        if mounted is not None and not is_tap(mounted):
            mounts[pattern] = wrap(mounted, tap)


def _scope_method(owner: Any, name: str) -> None:
    """Replace ``owner.name`` by an instance attribute that opens a call scope around it."""
    original = getattr(owner, name)
    if getattr(original, _SCOPED, False):
        return
    wrapper: Any
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = enter_call()
            try:
                return await original(*args, **kwargs)
            finally:
                exit_call(token)

        wrapper = async_wrapper
    else:

        @functools.wraps(original)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = enter_call()
            try:
                return original(*args, **kwargs)
            finally:
                exit_call(token)

        wrapper = sync_wrapper
    setattr(wrapper, _SCOPED, True)
    setattr(owner, name, wrapper)


def _instrument_derived(recorder: "Recorder", client: Any, provider: str | None) -> None:
    """Make ``client.copy(...)`` / ``client.with_options(...)`` return instrumented clients.

    The SDKs build a new client object that shares the tapped httpx client (so
    its attempts were recorded) but not the instance attribute ``request`` that
    opens the call scope, so retries of one call got a ``call_id`` each; a
    ``copy(http_client=...)`` was not recorded at all. Instrumenting the result
    fixes both, and records once: an httpx client already tapped is left alone.
    """
    for name in ("copy", "with_options"):
        original = getattr(client, name, None)
        if original is None or getattr(original, _SCOPED, False):
            continue
        setattr(client, name, _derived_factory(recorder, original, provider))


def _derived_factory(recorder: "Recorder", original: Any, provider: str | None) -> Any:
    @functools.wraps(original)
    def derive(*args: Any, **kwargs: Any) -> Any:
        return instrument(recorder, original(*args, **kwargs), provider=provider)

    setattr(derive, _SCOPED, True)
    return derive


def _instrument_genai(client: Any, tap: Tap) -> None:
    api = client._api_client
    sync_client = getattr(api, "_httpx_client", None)
    if sync_client is not None:
        tap_http_client(sync_client, tap)
    async_client = getattr(api, "_async_httpx_client", None)
    if async_client is not None:
        tap_http_client(async_client, tap)  # used when the caller supplied a transport
        for_loop = getattr(async_client, "_client_for_running_loop", None)
        if for_loop is not None and not getattr(for_loop, _SCOPED, False):
            for inner in list(getattr(async_client, "_loop_clients", {}).values()):
                tap_http_client(inner, tap)

            @functools.wraps(for_loop)
            def client_for_running_loop() -> Any:
                inner = for_loop()
                try:
                    if not is_tap(inner._transport):
                        tap_http_client(inner, tap)
                except Exception:  # noqa: BLE001 - the call must go on, unrecorded
                    count_failure(tap.recorder, "genai-loop")
                return inner

            setattr(client_for_running_loop, _SCOPED, True)
            async_client._client_for_running_loop = client_for_running_loop
        # aiohttp decompresses inside its parser: raw capture is only possible on the
        # httpx path. Keep a caller-supplied aiohttp session (and say it is not recorded).
        options = getattr(api, "_http_options", None)
        if getattr(options, "aiohttp_client", None) is None:
            api._use_aiohttp = _never
        else:
            _log_once.warning(
                "genai-aiohttp",
                "rawtap: this google-genai client was given its own aiohttp session; "
                "its async calls are not recorded",
            )
    _scope_method(api, "_request")
    _scope_method(api, "_async_request")


def _never() -> bool:
    return False
