"""The sink URL: rawtap's own parameters (schema, partition, insert) apart from libpq's."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

OWN_PARAMS = ("schema", "partition", "insert")
"""Query parameters rawtap reads and libpq never sees."""


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """(libpq URL without rawtap's parameters, rawtap's parameters)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in pairs if k in OWN_PARAMS}
    rest = [(k, v) for k, v in pairs if k not in OWN_PARAMS]
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), own
