"""What a search gives people: hits as JSON, CSV, tables and ZIPs (``results``), Darwin Core
(``darwincore``), how a result was obtained (``provenance``), and many photos at once with
their one-row-per-photo summary (``batch``); every export format, in one registry the CLI and the
dashboard read (``formats``)."""
