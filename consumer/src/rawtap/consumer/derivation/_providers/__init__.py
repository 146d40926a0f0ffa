"""One module per provider wire format, each exporting ``PARSER`` (listed in ``derive._parser``)."""
