"""URLs typed by a user cannot reach this machine or a private network (real servers on 127.0.0.1)."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

import pytest

from bioclip_nb.images import FetchStatus, ImageFetcher
from bioclip_nb.images.guard import AddressGuard, BlockedAddress, PinnedAdapter, pinned_session, why_not_public


def resolver(table: dict[str, list[str]]):
    """A resolver override: names the test decides, nothing from the system."""
    def resolve(name: str, port: int) -> list[str]:
        if name not in table:
            raise OSError(f"no such name {name}")
        return table[name]
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "0.0.0.0", "100.64.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2002:7f00:1::", "2002:c0a8:101::",               # 6to4 for 127.0.0.1 and 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",           # Teredo whose client is 192.0.2.45
    "2001:0:7f00:1::1",                               # Teredo whose server is 127.0.0.1
    "64:ff9b::7f00:1", "64:ff9b::a00:1",              # NAT64 for 127.0.0.1 and 10.0.0.1
    "::7f00:1", "::c0a8:101",                         # IPv4-compatible forms
])
def test_non_public_addresses_are_named(address):
    assert why_not_public(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "151.101.1.140", "2606:4700::6810:84e5", "8.8.8.8",
                                     "2002:808:808::"])     # 6to4 for a public address
def test_public_addresses_pass(address):
    assert why_not_public(ipaddress.ip_address(address)) is None


def test_typed_loopback_url_is_refused_with_its_reason(host):
    fetcher = ImageFetcher.isolated()
    result = fetcher.fetch_user_url(host.url("/img/1.jpg"))
    assert result.status is FetchStatus.BLOCKED
    assert "127.0.0.1" in result.message and "loopback" in result.message
    assert "BIOCLIP_NB_ALLOW_HOSTS" in result.message
    assert not any(r.path == "/img/1.jpg" for r in host.log)      # never connected
    fetcher.close()


def test_a_public_looking_name_resolving_to_a_private_address_is_refused():
    guard = AddressGuard(resolver=resolver({"images.example.org": ["93.184.215.14", "10.1.2.3"]}))
    with pytest.raises(BlockedAddress, match=r"images.example.org resolves to 10.1.2.3, a private network"):
        guard.check("https://images.example.org/a.jpg")
    guard = AddressGuard(resolver=resolver({"metadata.example.org": ["169.254.169.254"]}))
    with pytest.raises(BlockedAddress, match="link-local"):
        guard.check("http://metadata.example.org/latest/meta-data/")
    assert AddressGuard(resolver=resolver({"ok.example.org": ["93.184.215.14"]})).check(
        "https://ok.example.org/x.jpg") == ("ok.example.org", "93.184.215.14")


def test_unknown_names_and_other_schemes_are_refused():
    guard = AddressGuard(resolver=resolver({}))
    with pytest.raises(BlockedAddress, match="could not be found"):
        guard.check("http://nowhere.invalid/x.jpg")
    with pytest.raises(BlockedAddress, match="only http and https"):
        guard.check("file:///etc/passwd")


def test_the_checked_address_is_the_one_connected_to(host):
    """`allowed.test` exists only in the test's resolver: the download succeeds only if the
    connection goes to the checked address, without a second DNS lookup."""
    port = host.base.rsplit(":", 1)[1]
    guard = AddressGuard(allow=["allowed.test"], resolver=resolver({"allowed.test": ["127.0.0.1"]}))
    fetcher = ImageFetcher.isolated(guard=guard)
    result = fetcher.fetch_user_url(f"http://allowed.test:{port}/img/5.jpg")
    assert result.ok, result.message
    fetcher.close()


def test_a_redirect_to_loopback_is_refused(host):
    port = host.base.rsplit(":", 1)[1]
    target = quote(f"http://127.0.0.1:{port}/img/6.jpg", safe="")
    guard = AddressGuard(allow=["allowed.test"], resolver=resolver({"allowed.test": ["127.0.0.1"],
                                                                     "127.0.0.1": ["127.0.0.1"]}))
    fetcher = ImageFetcher.isolated(guard=guard)
    before = len(host.log)
    result = fetcher.fetch_user_url(f"http://allowed.test:{port}/redirect-to?url={target}")
    assert result.status is FetchStatus.BLOCKED and "loopback" in result.message
    host.wait_idle()
    paths = [r.path for r in host.log[before:]]
    assert f"/redirect-to?url={target}" in paths and "/img/6.jpg" not in paths     # the hop was never made
    fetcher.close()


def test_an_allowed_network_lets_the_test_host_through(host):
    fetcher = ImageFetcher.isolated(guard=AddressGuard(allow=["127.0.0.0/8"]))
    result = fetcher.fetch_user_url(host.url("/img/7.jpg"))
    assert result.ok and result.size is not None
    redirected = fetcher.fetch_user_url(host.url("/redirect/2/8.jpg"))
    assert redirected.ok                          # each hop checked and allowed
    fetcher.close()


def test_an_unpinned_host_is_never_connected_to(host):
    session, adapter = pinned_session("test")
    assert isinstance(adapter, PinnedAdapter)
    import requests
    with pytest.raises(requests.exceptions.ConnectionError, match="was not checked"):
        session.get(host.url("/img/9.jpg"), timeout=3)
    adapter.pin("127.0.0.1", "127.0.0.1")
    assert session.get(host.url("/img/9.jpg"), timeout=3).status_code == 200
    session.close()


def test_allowed_hosts_come_from_the_environment(tmp_path):
    from bioclip_nb.config import Settings
    settings = Settings.from_env({"BIOCLIP_NB_HOME": str(tmp_path), "BIOCLIP_NB_ALLOW_HOSTS": "10.0.0.0/8, images.osc.edu"})
    assert settings.allow_hosts == ("10.0.0.0/8", "images.osc.edu")
    assert Settings.from_env({"BIOCLIP_NB_HOME": str(tmp_path)}).allow_hosts == ()


def test_an_embedded_address_is_named_in_the_reason():
    assert "127.0.0.1" in why_not_public(ipaddress.ip_address("2002:7f00:1::"))


def test_a_6to4_address_of_loopback_is_never_connected_to(host):
    guard = AddressGuard(resolver=resolver({"sixtofour.test": ["2002:7f00:1::"]}))
    fetcher = ImageFetcher.isolated(guard=guard)
    before = len(host.log)
    result = fetcher.fetch_user_url("http://sixtofour.test/img/1.jpg")
    assert result.status is FetchStatus.BLOCKED and "127.0.0.1" in result.message
    assert len(host.log) == before
    fetcher.close()


def test_credentials_in_a_typed_url_are_refused_and_never_sent(host):
    port = host.base.rsplit(":", 1)[1]
    guard = AddressGuard(allow=["allowed.test"], resolver=resolver({"allowed.test": ["127.0.0.1"]}))
    fetcher = ImageFetcher.isolated(guard=guard)
    before = len(host.log)
    result = fetcher.fetch_user_url(f"http://user:s3cret@allowed.test:{port}/img/2.jpg")
    assert result.status is FetchStatus.BLOCKED and "user name or password" in result.message
    plain = fetcher.fetch(f"http://user:s3cret@127.0.0.1:{port}/img/2.jpg")
    assert plain.status is FetchStatus.BLOCKED and "user name or password" in plain.message
    host.wait_idle()
    assert len(host.log) == before
    fetcher.close()


@pytest.mark.parametrize("url", ["http://example.com:abc/x.jpg", "http://[::1/x.jpg", "http://example.com:99999/x.jpg"])
def test_a_malformed_url_becomes_a_result_with_a_message(url):
    fetcher = ImageFetcher.isolated(guard=AddressGuard(resolver=resolver({"example.com": ["93.184.215.14"]})))
    for result in (fetcher.fetch_user_url(url), fetcher.fetch(url), next(iter(fetcher.fetch_many([(1, url)])))):
        assert result.status is FetchStatus.BLOCKED and "malformed" in result.message
    fetcher.close()
