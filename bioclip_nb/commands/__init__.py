"""The ``bioclip-nb`` command: its parser and subcommands (``cli``), ``search`` (``clisearch``),
``check``, ``prepare`` and ``dashboard`` (``webapp``, Voilà as a child process). The only
place besides the dashboard that writes words for people."""
