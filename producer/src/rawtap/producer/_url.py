"""The checks redis-py's ``parse_url`` makes of a Redis URL, without importing redis-py.

``import redis`` costs hundreds of milliseconds (it pulls in the OpenTelemetry SDK's
metrics when that is installed); the Recorder checks its URL at construction and
leaves the import to its writer thread. Same errors, same messages.
"""

from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

_SCHEMES = ("redis://", "rediss://", "unix://")


def _to_bool(value: str) -> bool | None:
    if value == "":
        return None
    return value.upper() not in ("0", "F", "FALSE", "N", "NO")


def _verify_flags(value: str) -> object:
    """``[VERIFY_X509_STRICT, …]`` as redis-py reads it: every name an ``ssl.VerifyFlags``."""
    import ssl  # only for a URL that names flags

    names = [f.strip() for f in value.replace("[", "").replace("]", "").split(",")]
    for name in names:
        if not hasattr(ssl.VerifyFlags, name):
            raise ValueError(f"Invalid ssl verify flag: {name}")
    return names


_PARSERS: dict[str, Callable[[str], object]] = {
    "db": int,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "socket_read_size": int,
    "socket_keepalive": _to_bool,
    "retry_on_timeout": _to_bool,
    "max_connections": int,
    "health_check_interval": int,
    "ssl_check_hostname": _to_bool,
    "ssl_include_verify_flags": _verify_flags,
    "ssl_exclude_verify_flags": _verify_flags,
    "ssl_min_version": int,
    "timeout": float,
    "protocol": int,
    "legacy_responses": _to_bool,
}


def validated_arguments() -> set[str]:
    """The URL query arguments whose values are checked (as redis-py checks them)."""
    return set(_PARSERS)


def check_redis_url(url: str) -> None:
    """Raise ``ValueError`` where redis-py's ``parse_url`` would refuse ``url``."""
    if not url.startswith(_SCHEMES):
        raise ValueError(
            "Redis URL must specify one of the following schemes (redis://, rediss://, unix://)"
        )
    parsed = urlparse(url)
    for name, values in parse_qs(parsed.query).items():
        parser = _PARSERS.get(name)
        if parser is not None and values:
            try:
                parser(values[0])
            except (TypeError, ValueError):
                raise ValueError(f"Invalid value for '{name}' in connection URL.") from None
    if parsed.scheme != "unix":
        _ = parsed.port  # raises ValueError for a port that is not a number in range
