"""rawtap.tools: what a user installs to test an application against recorded providers.

The public surface::

    FakeProvider    a local server answering like OpenAI, Anthropic, Gemini and
                    OpenRouter byte for byte (rawtap.tools.fake_provider)
    ReplayServer    serves stored records back over HTTP in each provider's wire format
    run_demo        the whole pipeline on one machine (``rawtap demo``)

The ``rawtap`` CLI of rawtap-consumer finds ``demo`` and ``replay`` here through
the ``rawtap.commands`` entry point; a worker's installation carries none of it.
"""

from rawtap.tools._demo import redis_binary, run_demo
from rawtap.tools.fake_provider import FakeProvider
from rawtap.tools.replay import MatchMode, ReplayServer

__all__ = ["FakeProvider", "MatchMode", "ReplayServer", "redis_binary", "run_demo"]
