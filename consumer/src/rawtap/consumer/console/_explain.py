"""Words for what a record's fields mean, shown beside them on a call's page."""

from rawtap.shared import EndState

END_STATES: dict[str, str] = {
    EndState.COMPLETE: "The whole response arrived (end of body or the provider's final event).",
    EndState.CLOSED_EARLY: (
        "The caller's code stopped reading before the end (close, a with-block exit, a break): "
        "the body holds what arrived until then."
    ),
    EndState.CANCELLED: "The task reading the response was cancelled; the body holds what arrived.",
    EndState.ERROR: "Reading the body failed after the headers arrived; the error says why.",
    EndState.TRANSPORT_ERROR: (
        "No response: the connection, TLS or a timeout failed before any header arrived."
    ),
    EndState.ABANDONED: (
        "Nobody closed the response: the garbage collector, interpreter exit or asyncio's "
        "finalizer did, so the caller never read it to the end."
    ),
}
"""One sentence per end state (what the producer saw)."""


def explain_end_state(value: str) -> str:
    """The sentence for an end state (a stored value this release does not know says so)."""
    return END_STATES.get(value, "An end state this release does not know.")
