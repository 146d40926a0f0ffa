"""rawtap.producer: record what LLM providers send back, without slowing the service.

The public surface::

    Recorder          queue records (record / record_response), observe, close;
                      capture SDK clients (instrument, session, transport, async_transport)
    RecorderStats     a snapshot of its counters
    RecordDetails     optional keyword details of a record
    Recorded, Failed, MemoryWarning, Event   observer events

The producer never raises into the host after construction: an invalid setting
raises :class:`rawtap.shared.ConfigError` when the Recorder is built; after
that every failure is counted in ``stats()`` and logged at most once a minute.
"""

from rawtap.producer._details import RecordDetails
from rawtap.producer._events import Event, Failed, MemoryWarning, Recorded, RecorderStats
from rawtap.producer._recorder import Recorder

__all__ = [
    "Event",
    "Failed",
    "MemoryWarning",
    "RecordDetails",
    "Recorded",
    "Recorder",
    "RecorderStats",
]
