"""The GenAI conventions' token totals of a :class:`Derived`, from the provider's own split.

``gen_ai.usage.input_tokens`` counts every input token, cached ones included, and
``gen_ai.usage.output_tokens`` every output token, reasoning included. The providers
split differently: OpenAI's prompt and completion counts are already such totals
(``cached_tokens`` and ``reasoning_tokens`` are parts of them); Anthropic's
``input_tokens`` leave out cache reads and writes; Gemini's ``candidatesTokenCount``
leaves out ``thoughtsTokenCount``. Each parser says which (``input_excludes_cache``,
``output_excludes_reasoning``); the store keeps the provider's own counts.
"""

from rawtap.consumer.derivation._derived import Derived
from rawtap.consumer.derivation._parser import PARSERS


def _total(*counts: int | None) -> int | None:
    present = [c for c in counts if c is not None]
    return sum(present) if present else None


def usage_totals(derived: Derived) -> tuple[int | None, int | None]:
    """(input, output) tokens as the GenAI conventions count them; None where not reported."""
    parser = PARSERS.get(derived.parser) if derived.parser else None
    input_tokens, output_tokens = derived.input_tokens, derived.output_tokens
    if parser is None:
        return input_tokens, output_tokens
    if parser.input_excludes_cache and input_tokens is not None:
        input_tokens = _total(input_tokens, derived.cached_tokens, derived.cache_write_tokens)
    if parser.output_excludes_reasoning and derived.reasoning_tokens is not None:
        output_tokens = _total(output_tokens, derived.reasoning_tokens)
    return input_tokens, output_tokens
