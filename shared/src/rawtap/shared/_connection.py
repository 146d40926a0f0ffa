"""Opening a redis-py client for a rawtap URL: one Redis, or a Redis Cluster.

``redis+cluster://host:port[,host:port…]/0`` (``rediss+cluster://`` with TLS),
or any ``redis://`` URL with ``cluster=True``, gives redis-py's
``RedisCluster``: it follows ``MOVED``/``ASK`` redirections, refreshes its slot
table after a failover, and splits pipelines per node. rawtap only sends
commands that touch one key, so nothing it sends can fail with ``CROSSSLOT``.

Both clients get explicit timeouts and **no** automatic retries: redis-py's
retries can write one ``XADD`` twice and stall a thread; rawtap's own loops
retry with backoff and carry record ids (see RELIABILITY.md).

redis-py is imported here lazily: rawtap-shared does not depend on it, the
producer and consumer distributions that call this do.
"""

from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import redis
    from redis.cluster import RedisCluster

    RedisClient: TypeAlias = "redis.Redis | RedisCluster"
else:
    RedisClient = object

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def split_cluster_url(url: str) -> tuple[str, list[tuple[str, int]], bool]:
    """``(plain URL, extra startup nodes, is a cluster URL)`` for a rawtap Redis URL.

    >>> split_cluster_url("redis+cluster://a:7000,b:7001/0")
    ('redis://a:7000/0', [('b', 7001)], True)
    >>> split_cluster_url("redis://h:6379/0")
    ('redis://h:6379/0', [], False)
    """
    parts = urlsplit(url)
    scheme = _CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None:
        return url, [], False
    creds, at, hosts = parts.netloc.rpartition("@")
    first, *others = hosts.split(",")
    nodes = []
    for node in others:
        host, _, port = node.rpartition(":")
        nodes.append((host or node, int(port) if host else 6379))
    plain = urlunsplit((scheme, f"{creds}{at}{first}", parts.path, parts.query, parts.fragment))
    return plain, nodes, True


def open_redis(
    url: str,
    *,
    cluster: bool,
    socket_timeout: float,
    connect_timeout: float,
    name: str,
) -> "RedisClient":
    """A client for ``url`` with explicit timeouts and no hidden retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    plain, nodes, cluster_url = split_cluster_url(url)
    if cluster or cluster_url:
        return RedisCluster.from_url(
            plain,
            startup_nodes=[ClusterNode(host, port) for host, port in nodes] or None,  # type: ignore[no-untyped-call]
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            client_name=name,
        )
    return redis.Redis.from_url(
        plain,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        client_name=name,
    )
