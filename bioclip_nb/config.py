"""Settings: where bioclip-nb keeps its data, and which atlas it opens by default.

Two environment variables steer it:

``BIOCLIP_NB_HOME``
    The working directory for downloads (``data/``), derived caches (``cache/``) and the
    demo atlas (``demo/``). Defaults to ``~/.cache/bioclip-nb``.
``BIOCLIP_NB_ATLAS``
    An atlas directory to open when none is named. On a shared JupyterHub this is how every
    user is pointed at one read-only copy of the published artifacts. Several, separated by
    ``os.pathsep`` (``:``), give the dashboard a model selector (e.g. a BioCLIP 2 and a
    BioCLIP 2.5 atlas); the first is the default.
``BIOCLIP_NB_STATE_DIR``
    Where the per-host request ledger lives (``hosts.sqlite``): every process naming the same
    directory keeps the image hosts' policies together. Defaults to ``$BIOCLIP_NB_HOME/state``;
    on a JupyterHub node where users have different homes, point every kernel at one
    node-local directory writable by all (see docs/osc/README.md).
``BIOCLIP_NB_DERIVED_DIR``
    A directory of derived data prepared once for everybody by ``bioclip-nb prepare
    --derived-dir`` (scope counts, bitmaps, cell counts, the HNSW quantizer, the atlas map),
    read before the per-user cache; may be read-only.
``BIOCLIP_NB_ALLOW_HOSTS``
    Host names or networks (comma-separated, e.g. ``images.osc.edu,10.20.0.0/16``) that image
    URLs typed by users may reach although they are not public internet addresses. Empty
    by default: a typed URL can never reach this machine or a private network.
``BIOCLIP_NB_SERVER``, ``BIOCLIP_NB_TOKEN``, ``BIOCLIP_NB_TOKEN_FILE``
    A ``bioclip-nb serve`` to use (e.g. ``http://gpu-node:8765``) and its token, or a file
    holding it. Without them, clients use the server recorded under ``BIOCLIP_NB_HOME``.
``BIOCLIP_NB_RUNTIME``
    How encoders run on a CPU when no ``--runtime`` is given: ``auto`` (default; the fastest
    runtime that passed this machine's equivalence check against torch), ``torch``,
    ``onnxruntime``, ``onnxruntime-int8`` or ``openvino``. An administrator can pin one here.
``BIOCLIP_NB_GBIF_API``
    The GBIF API that occurrence records (place, date, licence) come from; default
    ``https://api.gbif.org/v1``. A mirror, or a test server, can stand in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_HOME = "BIOCLIP_NB_HOME"
ENV_ATLAS = "BIOCLIP_NB_ATLAS"
ENV_ALLOW_HOSTS = "BIOCLIP_NB_ALLOW_HOSTS"
ENV_STATE = "BIOCLIP_NB_STATE_DIR"
ENV_DERIVED = "BIOCLIP_NB_DERIVED_DIR"
ENV_SERVER = "BIOCLIP_NB_SERVER"
ENV_TOKEN = "BIOCLIP_NB_TOKEN"
ENV_TOKEN_FILE = "BIOCLIP_NB_TOKEN_FILE"
ENV_GBIF_API = "BIOCLIP_NB_GBIF_API"
ENV_RUNTIME = "BIOCLIP_NB_RUNTIME"
ENV_AUTOSTART = "BIOCLIP_NB_AUTOSTART"
ENV_SERVER_LOG = "BIOCLIP_NB_SERVER_LOG"
#: Where GBIF occurrence records are read (``/occurrence/{key}`` below it).
GBIF_API = "https://api.gbif.org/v1"


@dataclass(frozen=True)
class Settings:
    """Resolved locations. Build with :meth:`from_env`; nothing is created until asked."""

    home: Path
    atlas: Path | None = None
    more_atlases: tuple[Path, ...] = ()    # further atlases named in BIOCLIP_NB_ATLAS (after the first)
    allow_hosts: tuple[str, ...] = ()
    state: Path | None = None
    derived: Path | None = None
    cache: Path | None = None        # another place for derived data (``prepare --derived-dir``)
    server: str | None = None        # a bioclip-nb server's URL
    token: str | None = field(default=None, repr=False)   # BIOCLIP_NB_TOKEN, or BIOCLIP_NB_TOKEN_FILE's content
    gbif_api: str = field(default_factory=lambda: (os.environ.get(ENV_GBIF_API) or GBIF_API).rstrip("/"))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read ``BIOCLIP_NB_HOME`` and ``BIOCLIP_NB_ATLAS`` (from ``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        home = Path(env.get(ENV_HOME) or Path.home() / ".cache" / "bioclip-nb").expanduser()
        atlases = [Path(a).expanduser() for a in env.get(ENV_ATLAS, "").split(os.pathsep) if a.strip()]
        allow = tuple(h.strip() for h in env.get(ENV_ALLOW_HOSTS, "").split(",") if h.strip())
        state, derived = env.get(ENV_STATE), env.get(ENV_DERIVED)
        return cls(home=home, atlas=atlases[0] if atlases else None, more_atlases=tuple(atlases[1:]), allow_hosts=allow,
                   state=Path(state).expanduser() if state else None,
                   derived=Path(derived).expanduser() if derived else None,
                   server=env.get(ENV_SERVER) or None, token=_token(env),
                   gbif_api=(env.get(ENV_GBIF_API) or GBIF_API).rstrip("/"))

    @property
    def data_dir(self) -> Path:
        """Where ``bioclip-nb download`` puts the published artifacts."""
        return self.home / "data"

    @property
    def cache_dir(self) -> Path:
        """Derived data (scope bitmaps, maps); safe to delete."""
        return self.cache or self.home / "cache"

    @property
    def image_cache_dir(self) -> Path:
        """The on-disk cache of fetched images."""
        return self.cache_dir / "images"

    @property
    def state_dir(self) -> Path:
        """The host-policy ledger shared by every process on the machine that names it."""
        return self.state or self.home / "state"

    @property
    def demo_dir(self) -> Path:
        """Where the demo atlas is built on first use."""
        return self.home / "demo"

    def atlas_cache_dir(self, fingerprint: str) -> Path:
        """The cache directory of one atlas, created on demand when the home is writable."""
        path = self.cache_dir / fingerprint
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # read-only home: readers find nothing, writers (bioclip_nb.cache) skip quietly
        return path


def _token(env) -> str | None:
    if env.get(ENV_TOKEN):
        return env[ENV_TOKEN].strip()
    path = env.get(ENV_TOKEN_FILE)
    if path:
        try:
            return Path(path).expanduser().read_text(encoding="utf-8").strip() or None
        except OSError:
            return None      # reported when the server refuses the request
    return None
