"""One module per provider wire format: a JSON reader and a stream reader each."""
