"""URLs typed by a user never reach this machine's own or private network.

On a JupyterHub node, at OSC, or behind a server bound beyond loopback, "Use image URL" would
otherwise let anyone make the kernel request internal addresses (127.0.0.1, 10.x, 172.16-31.x,
192.168.x, 169.254.169.254 cloud metadata, their IPv6 equivalents) and learn from the answer
what is there. :class:`AddressGuard` resolves a URL's host and refuses every address that is
not global (loopback, private, link-local, shared, multicast, reserved, unspecified, IPv4
inside IPv6 included), for the first request and for every redirect; :class:`PinnedAdapter`
then connects to the address that was checked (no second DNS lookup), while TLS and the Host
header still see the name.

An administrator can allow named hosts or networks (``BIOCLIP_NB_ALLOW_HOSTS``, e.g.
``images.osc.edu,10.20.0.0/16``) for a site that serves images internally. Image URLs that
come from an atlas's metadata do not pass through here; they keep their host policies.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as _connection

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolver(host, port) -> addresses`` (tests hand in their own).
Resolver = Callable[[str, int], list[str]]


class BlockedAddress(ValueError):
    """A user's URL points somewhere bioclip-nb must not connect to; the message says why."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


#: IPv6 forms that carry an IPv4 address in their low 32 bits.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped (``::ffff:a.b.c.d``), 6to4
    (``2002::/16``), Teredo (``2001::/32``: its server and its client), NAT64 (``64:ff9b::/96``)
    and IPv4-compatible (``::a.b.c.d``)."""
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        found.append(low)
    return [a for a in found if a is not None]


def why_not_public(address: Address) -> str | None:
    """Why an address is not a public internet address, or None if it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in embedded_ipv4(address):
            reason = why_not_public(inner)
            if reason is not None:
                return f"{reason}, through {inner} inside it"
    checks = (
        ("is_loopback", "this machine itself (loopback)"),
        ("is_unspecified", "an unspecified address"),
        ("is_link_local", "a link-local address (cloud metadata lives here)"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private network"),
        ("is_reserved", "a reserved address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    return None if address.is_global else "a network that is not the public internet"


def parse_allow(entries: Iterable[str]) -> tuple[frozenset[str], tuple[Network, ...]]:
    """Split ``BIOCLIP_NB_ALLOW_HOSTS`` entries into host names and networks."""
    hosts, networks = set(), []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return frozenset(hosts), tuple(networks)


class AddressGuard:
    """Checks the host of a user's URL before every connection (see the module docstring)."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver | None = None):
        self.allowed_hosts, self.allowed_networks = parse_allow(allow)
        self.resolver = resolver or system_resolver

    def check(self, url: str) -> tuple[str, str]:
        """``(host, address)`` to connect to for ``url``, or :class:`BlockedAddress` saying why not."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BlockedAddress(f"the URL is malformed ({exc})") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise BlockedAddress(f"only http and https image URLs can be used, not {parts.scheme or 'this'}:")
        if parts.username is not None or parts.password is not None:
            raise BlockedAddress("the URL carries a user name or password; remove them "
                                 "(bioclip-nb never sends credentials to image hosts)")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise BlockedAddress("the URL has no host name")
        port = port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            found = self.resolver(host, port)
        except (OSError, UnicodeError):
            raise BlockedAddress(f"the host {host} could not be found (DNS)") from None
        if not found:
            raise BlockedAddress(f"the host {host} could not be found (DNS)")
        by_name = host in self.allowed_hosts
        for text in found:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if by_name or any(address in net for net in self.allowed_networks):
                return host, str(address)
            reason = why_not_public(address)
            if reason is not None:
                raise BlockedAddress(
                    f"{host} resolves to {address}, {reason}; image URLs may only point to public "
                    "internet hosts (an administrator can allow a host with BIOCLIP_NB_ALLOW_HOSTS)")
        return host, str(ipaddress.ip_address(found[0].split("%", 1)[0]))


class PinnedAdapter(requests.adapters.HTTPAdapter):
    """A transport that connects each host only to the address it was pinned to.

    ``pin(host, address)`` records a checked address; a connection to any host without a pin
    fails before a socket is opened. TLS certificate checks and the Host header use the name.
    """

    def __init__(self, **kwargs):
        self.pins: dict[str, str] = {}
        pins = self.pins

        def new_conn(conn) -> socket.socket:
            address = pins.get(conn.host.lower().rstrip("."))
            if address is None:
                raise NewConnectionError(conn, f"refusing to connect to {conn.host}: its address was not checked")
            return _connection.create_connection((address, conn.port), conn.timeout,
                                                 source_address=conn.source_address,
                                                 socket_options=conn.socket_options)

        http_conn = type("PinnedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn})
        https_conn = type("PinnedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn})
        self._pools = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._pools)

    def pin(self, host: str, address: str) -> None:
        """Allow connections to ``host``, at ``address`` only."""
        self.pins[host.lower().rstrip(".")] = address


def pinned_session(user_agent: str) -> tuple[requests.Session, PinnedAdapter]:
    """A session that goes only to pinned addresses: no proxies from the environment (a proxy
    would resolve the name again), no automatic redirects (each hop is checked)."""
    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = user_agent
    adapter = PinnedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter
