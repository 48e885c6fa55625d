"""The JupyterLab launcher entry: ``jupyter-server-proxy`` starts the dashboard on demand.

With ``jupyter-server-proxy`` installed (``pip install "bioclip-nb[hub]"``), JupyterLab's
launcher shows a *bioclip-nb* tile. Opening it starts ``bioclip-nb dashboard`` (Voilà) on a
free port behind the user's own Jupyter server, at ``<base_url>bioclip-nb/``: under JupyterHub
(the Ohio Supercomputer Center's OnDemand included) that is ``/user/NAME/bioclip-nb/``, behind
the hub's login, with no port to learn. The dashboard reads the same settings as everywhere
(``BIOCLIP_NB_ATLAS``, ``BIOCLIP_NB_DERIVED_DIR``, ...); with ``BIOCLIP_NB_SERVER`` set, its
kernels use that server and hold no model or index.

Registered in ``pyproject.toml`` under ``[project.entry-points.jupyter_serverproxy_servers]``.
"""

from __future__ import annotations

import os
import sys
from importlib import resources

from ..config import ENV_SERVER

#: The path under the Jupyter server's base URL.
NAME = "bioclip-nb"


def icon_path() -> str:
    """The launcher tile's icon (an SVG inside the package)."""
    return str(resources.files("bioclip_nb.commands").joinpath("icon.svg"))


def setup_proxy() -> dict:
    """The server process ``jupyter-server-proxy`` runs: the dashboard on ``{port}`` under
    ``{base_url}bioclip-nb/`` (absolute URLs: Voilà writes its own links with that prefix)."""
    command = [sys.executable, "-m", "bioclip_nb.commands.cli", "dashboard", "--port", "{port}", "--no-browser",
               "--base-url", "{base_url}" + NAME + "/", "--exit-with-parent"]
    server = os.environ.get(ENV_SERVER)
    if server:
        command += ["--server", server]
    return {
        "command": command,
        "absolute_url": True,
        "timeout": 300,                  # the first start may build the demo atlas
        "new_browser_tab": True,
        "launcher_entry": {"enabled": True, "title": "bioclip-nb", "icon_path": icon_path(), "category": "Notebook"},
    }
