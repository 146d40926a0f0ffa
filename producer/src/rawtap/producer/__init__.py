"""rawtap.producer: record what LLM providers send back, without slowing the service.

The public surface::

    Recorder          queue records (record / record_response), observe, close;
                      capture SDK clients (instrument, session, transport, async_transport)
    RecorderStats     a snapshot of its counters
    RecordDetails     optional keyword details of a record
    Recorded, Failed, MemoryWarning, Event   observer events
    ResponseRecorder, ResponseRecorderConfig the story's names for Recorder and
                      rawtap.shared.ProducerSettings (``buffer_size`` is
                      ``max_buffered_records``); see docs/producer.md

The producer never raises into the host after construction: an invalid setting
raises :class:`rawtap.shared.ConfigError` when the Recorder is built; after
that every failure is counted in ``stats()`` and logged at most once a minute.
"""

from rawtap.producer._details import RecordDetails
from rawtap.producer._events import Event, Failed, MemoryWarning, Recorded, RecorderStats
from rawtap.producer._recorder import Recorder
from rawtap.shared import ProducerSettings

ResponseRecorder = Recorder
"""The story's name for :class:`Recorder`: ``await ResponseRecorder(config).record_response(…)``."""

ResponseRecorderConfig = ProducerSettings
"""The story's name for :class:`rawtap.shared.ProducerSettings`.

``ResponseRecorderConfig(enabled=…, max_memory_mb=…, buffer_size=…, providers=…)``:
``buffer_size`` is accepted (and readable) as the name of ``max_buffered_records``.
"""

__all__ = [
    "Event",
    "Failed",
    "MemoryWarning",
    "RecordDetails",
    "Recorded",
    "Recorder",
    "RecorderStats",
    "ResponseRecorder",
    "ResponseRecorderConfig",
]
