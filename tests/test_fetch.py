"""Image fetching against real HTTP servers on 127.0.0.1, with every fault."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from bioclip_nb.dashboard.wording import describe_failures
from bioclip_nb.images import (
    DEFAULT_POLICIES,
    FetchLimits,
    FetchStatus,
    HostPolicy,
    ImageFetcher,
    failure_counts,
    open_image_cache,
)
from bioclip_nb.images.fetch import USER_AGENT, variant_url
from bioclip_nb.testing.imagehost import ImageHost


@pytest.fixture(scope="module")
def host():
    with ImageHost(hang=5.0) as h:
        yield h


@pytest.fixture
def fetcher(host, tmp_path):
    f = ImageFetcher.isolated(cache=open_image_cache(tmp_path / "cache"),
                     limits=FetchLimits(connect_timeout=1.0, read_timeout=1.0, total_timeout=2.5, max_bytes=5 * 2**20))
    yield f
    f.close()


def test_ok_thumbnail_is_small_jpeg(fetcher, host):
    r = fetcher.fetch(host.url("/img/1.jpg"), key=7)
    assert r.status is FetchStatus.OK and r.key == 7 and r.nbytes > 0
    assert max(r.size) <= 256 and r.image().format == "JPEG"
    full = fetcher.fetch(host.url("/img/1.jpg"), variant="full")
    assert full.size == (640, 480)


@pytest.mark.parametrize("path, status, words", [
    ("/404/1.jpg", FetchStatus.NOT_FOUND, "HTTP 404"),
    ("/429-always/1.jpg", FetchStatus.RATE_LIMITED, "HTTP 429"),
    ("/429-long/1.jpg", FetchStatus.RATE_LIMITED, "HTTP 429"),
    ("/500/1.jpg", FetchStatus.ERROR, "HTTP 500"),
    ("/503/1.jpg", FetchStatus.ERROR, "HTTP 503"),
    ("/slow-headers/1.jpg", FetchStatus.TIMEOUT, "did not answer in time"),
    ("/slow-body/1.jpg", FetchStatus.TIMEOUT, "too slow"),
    ("/big/1.jpg", FetchStatus.TOO_LARGE, "over 5 MB"),
    ("/big-chunked/1.jpg", FetchStatus.TOO_LARGE, "over 5 MB"),
    ("/html/1.jpg", FetchStatus.NOT_IMAGE, "text/html"),
    ("/garbage/1.jpg", FetchStatus.NOT_IMAGE, "not an image"),
    ("/redirect/5/1.jpg", FetchStatus.ERROR, "too many redirects"),
    ("/redirect-file/1.jpg", FetchStatus.BLOCKED, "non-http"),
])
def test_fault_statuses(fetcher, host, path, status, words):
    t0 = time.monotonic()
    r = fetcher.fetch(host.url(path))
    assert r.status is status and words in r.message and r.data is None
    assert time.monotonic() - t0 < 6  # never waits on a dead host much past the limits


def test_few_redirects_and_octet_stream_are_fine(fetcher, host):
    assert fetcher.fetch(host.url("/redirect/2/3.jpg")).ok
    assert fetcher.fetch(host.url("/octet/3.jpg")).ok


def test_429_is_retried_once_within_retry_after(fetcher, host):
    t0 = time.monotonic()
    r = fetcher.fetch(host.url("/429/77.jpg"))
    assert r.ok and time.monotonic() - t0 >= 1.0
    assert len(host.requests_for("/429/77.jpg")) == 2


def test_503_is_retried_once_and_counts_two_requests(fetcher, host):
    r = fetcher.fetch(host.url("/503/42.jpg"))
    assert r.status is FetchStatus.ERROR and "HTTP 503" in r.message
    assert len(host.requests_for("/503/42.jpg")) == 2


def test_retry_after_as_an_http_date_is_honoured(fetcher, host):
    t0 = time.monotonic()
    r = fetcher.fetch(host.url("/429-date/78.jpg"))
    assert r.ok and time.monotonic() - t0 >= 0.9      # waited for the date (1-2 s ahead, whole seconds)
    log = host.requests_for("/429-date/78.jpg")
    assert len(log) == 2 and log[1].start - log[0].start >= 0.9


def test_429_with_long_retry_after_is_not_waited_for(fetcher, host):
    t0 = time.monotonic()
    assert fetcher.fetch(host.url("/429-long/5.jpg")).status is FetchStatus.RATE_LIMITED
    assert time.monotonic() - t0 < 1.0 and len(host.requests_for("/429-long/5.jpg")) == 1


@pytest.mark.parametrize("url, status", [
    (None, FetchStatus.NO_URL), ("", FetchStatus.NO_URL), (float("nan"), FetchStatus.NO_URL),
    ("file:///etc/passwd", FetchStatus.BLOCKED), ("ftp://example.org/a.jpg", FetchStatus.BLOCKED),
    ("javascript:alert(1)", FetchStatus.BLOCKED), ("atlas:/images/a.png", FetchStatus.BLOCKED),
])
def test_urls_we_do_not_fetch(fetcher, url, status):
    assert fetcher.fetch(url).status is status


def test_unreachable_host_is_an_error_not_an_exception(fetcher):
    r = fetcher.fetch("http://127.0.0.1:9/nothing.jpg")
    assert r.status in (FetchStatus.ERROR, FetchStatus.TIMEOUT)


def test_local_files_only_inside_the_atlas(tmp_path):
    from helpers.pictures import encode, photo
    root = tmp_path / "atlas"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(encode(photo(), "PNG"))
    (tmp_path / "secret.png").write_bytes(encode(photo(), "PNG"))
    f = ImageFetcher.isolated(atlas_root=root)
    assert f.fetch("atlas:/images/a.png").ok
    assert f.fetch("atlas:/images/missing.png").status is FetchStatus.NOT_FOUND
    assert f.fetch("atlas:/../secret.png").status is FetchStatus.BLOCKED
    assert f.usage() == {}  # no network involved
    f.close()


def test_every_request_names_the_application_on_the_wire(fetcher, host):
    """The User-Agent the image hosts' policies ask for, as the host received it (not as configured)."""
    before = len(host.log)
    assert fetcher.fetch(host.url("/img/41.jpg")).ok
    host.wait_idle()
    sent = [r.headers.get("User-Agent") for r in host.log[before:]]
    assert sent and all(ua == USER_AGENT for ua in sent)
    assert USER_AGENT.startswith("bioclip-nb/") and "(+http" in USER_AGENT


def test_inaturalist_variants():
    assert variant_url("https://static.inaturalist.org/photos/1/original.jpg", "thumb") == \
        "https://static.inaturalist.org/photos/1/medium.jpg"
    assert variant_url("https://inaturalist-open-data.s3.amazonaws.com/photos/2/original.jpeg", "thumb").endswith("/2/medium.jpeg")
    assert variant_url("https://inaturalist-open-data.s3.amazonaws.com/photos/2/original.jpeg", "full").endswith("/original.jpeg")
    assert variant_url("https://example.org/original.jpg", "thumb") == "https://example.org/original.jpg"


def test_rate_limited_host_is_spaced_and_serial(tmp_path):
    """static.inaturalist.org's real policy, pointed at a local host: >= 1 s apart, one at a time."""
    with ImageHost() as h:
        f = ImageFetcher.isolated(resolve={"static.inaturalist.org": h.base}, workers=8)
        urls = [(i, f"https://static.inaturalist.org/photos/{i}/original.jpg") for i in range(4)]
        results = list(f.fetch_many(urls))
        f.close()
    assert all(r.ok for r in results)
    log = sorted(h.requests_for("/photos/"), key=lambda r: r.start)
    assert len(log) == 4 and all("/medium." in r.path for r in log)   # the small variant
    gaps = [b.start - a.start for a, b in zip(log, log[1:])]
    assert min(gaps) >= 1.0, gaps
    assert max(r.concurrent for r in log) == 1
    assert all(a.end <= b.start for a, b in zip(log, log[1:]))


def test_other_hosts_run_in_parallel_with_a_cap():
    with ImageHost(latency=0.3) as h:
        f = ImageFetcher.isolated(policies={"127.0.0.1": HostPolicy(max_concurrency=3)}, workers=8)
        t0 = time.monotonic()
        results = list(f.fetch_many([(i, h.url(f"/img/{i}.jpg")) for i in range(9)]))
        elapsed = time.monotonic() - t0
        f.close()
    assert all(r.ok for r in results)
    assert max(r.concurrent for r in h.log) == 3
    assert elapsed < 9 * 0.3  # parallel, not serial


def test_byte_budget_stops_fetching():
    with ImageHost() as h:
        one = len(h.bytes_for("medium", 0))
        policy = HostPolicy(min_interval=0.0, max_concurrency=1, hourly_bytes=int(one * 2.5))
        f = ImageFetcher.isolated(policies={"static.inaturalist.org": policy}, resolve={"static.inaturalist.org": h.base})
        results = [f.fetch("https://static.inaturalist.org/photos/0/original.jpg") for _ in range(5)]
        f.close()
    statuses = [r.status for r in results]
    assert statuses[:3] == [FetchStatus.OK] * 3
    assert statuses[3:] == [FetchStatus.BUDGET_EXCEEDED] * 2
    assert len(h.requests_for("/photos/")) == 3   # no request past the budget
    assert "budget" in results[-1].message


def test_second_fetch_makes_zero_requests(host, tmp_path):
    cache = open_image_cache(tmp_path / "c")
    urls = [(i, host.url(f"/img/{1000 + i}.jpg")) for i in range(6)]
    f1 = ImageFetcher.isolated(cache=cache)
    first = list(f1.fetch_many(urls))
    before = len(host.requests_for("/img/10"))
    f1.close()
    f2 = ImageFetcher.isolated(cache=open_image_cache(tmp_path / "c"))   # a reopened notebook
    second = list(f2.fetch_many(urls))
    f2.close()
    assert len(host.requests_for("/img/10")) == before
    assert all(r.from_cache and r.ok for r in second)
    assert {r.key: r.data for r in first} == {r.key: r.data for r in second}


def test_results_arrive_progressively_and_as_new_objects(host):
    with ImageHost(latency=0.0) as h:
        hits = pd.DataFrame({"id": [1, 2, 3], "url": [h.url("/img/1.jpg"), None, h.url("/slow-headers/3.jpg")]})
        snapshot = hits.copy()
        f = ImageFetcher.isolated(limits=FetchLimits(read_timeout=1.0, total_timeout=2.0))
        h.hang = 3.0
        seen, times = [], []
        t0 = time.monotonic()
        for r in f.fetch_many(zip(hits["id"], hits["url"]), on_result=seen.append):
            times.append((r.key, time.monotonic() - t0))
        f.close()
    pd.testing.assert_frame_equal(hits, snapshot)   # caller's rows untouched
    assert [k for k, _ in times][-1] == 3           # the slow one comes last
    assert times[0][1] < 0.9                         # the fast ones did not wait for it
    assert len(seen) == 3


def test_cancel_stops_pending_fetches():
    with ImageHost(latency=0.5) as h:
        f = ImageFetcher.isolated(policies={"127.0.0.1": HostPolicy(max_concurrency=1)}, workers=2)
        cancel = threading.Event()
        got = []
        for r in f.fetch_many([(i, h.url(f"/img/{i}.jpg")) for i in range(10)], cancel=cancel):
            got.append(r)
            cancel.set()
        f.close()
        made = h.requests_for("/img/")              # after the request in flight has finished
    assert len(got) <= 3 and len(made) <= 3


def test_bandwidth_accounting_per_host(host, tmp_path):
    f = ImageFetcher.isolated()
    r = f.fetch(host.url("/img/5.jpg"))
    usage = f.usage()["127.0.0.1"]
    assert usage["requests"] == 1 and usage["bytes"] == r.nbytes == usage["last_hour_bytes"] > 0
    f.close()


def test_policy_table_is_overridable():
    f = ImageFetcher.isolated(policies={"static.inaturalist.org": HostPolicy(min_interval=2.0, max_concurrency=1)})
    assert f.policies["static.inaturalist.org"].min_interval == 2.0
    assert DEFAULT_POLICIES["static.inaturalist.org"].min_interval == 1.0   # defaults untouched
    assert f.gate("unknown.example").policy == DEFAULT_POLICIES["*"]
    f.close()


def test_summary_words():
    from bioclip_nb.images import FetchResult
    rs = [FetchResult(i, "u", s) for i, s in enumerate([FetchStatus.OK, FetchStatus.TIMEOUT, FetchStatus.TIMEOUT, FetchStatus.NOT_FOUND])]
    assert failure_counts(rs) == (4, {FetchStatus.TIMEOUT: 2, FetchStatus.NOT_FOUND: 1})
    assert describe_failures(rs) == "3 of 4 images unavailable (2 timeouts, 1 not found)"
    assert describe_failures(rs[:1]) == ""
