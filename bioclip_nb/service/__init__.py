"""One warm service for every kernel and command: ``bioclip-nb serve``, its clients, its state.

>>> from bioclip_nb.service import connect
>>> conn = connect()          # the server recorded under BIOCLIP_NB_HOME, or BIOCLIP_NB_SERVER
>>> conn.atlas.search(conn.encoder.encode(image).embedding, top_n=10)

``server`` is the HTTP API, ``warm`` what it keeps loaded, ``batcher`` how it shares forward
passes, ``run`` how it starts and stops, ``statefile`` its record, ``client`` the faces of
``Atlas``, the encoder and the fetcher that talk to it.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "connect": "client", "Client": "client", "Connection": "client", "RemoteAtlas": "client",
    "RemoteEncoder": "client", "RemoteFetcher": "client", "resolve": "client",
    "ServerRecord": "statefile", "read_record": "statefile",
    "serve": "run", "start_background": "run", "stop": "run",
})
