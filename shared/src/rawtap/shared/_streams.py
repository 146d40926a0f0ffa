"""Redis key naming for rawtap's streams.

Every key carries a hash tag (``{…}``) so that a Redis Cluster places each
shard on its own slot and no command ever spans two slots.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamNames:
    """The Redis keys under one prefix (default ``rawtap``).

    >>> StreamNames("rawtap").shard(0)
    'rawtap:{0}'
    """

    prefix: str = "rawtap"

    def shard(self, index: int) -> str:
        """The stream key of shard ``index`` (``rawtap:{0}``, ``rawtap:{1}``, …)."""
        return f"{self.prefix}:{{{index}}}"

    @property
    def dead_letters(self) -> str:
        """The dead-letter stream (``rawtap:{dead}``)."""
        return f"{self.prefix}:{{dead}}"
