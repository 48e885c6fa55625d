"""How the index found the results: probe reports, recall sweeps and the atlas map
(``explore``), their matplotlib figures (``plots``), and the Plots tab's pictures without
widgets (``figures``: LocalFigures, which the server also serves)."""
