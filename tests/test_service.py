"""``bioclip-nb serve`` as real processes on 127.0.0.1: its API, its refusals, its faults, and the
CLI and dashboard that use it."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import requests
from helpers.dashatlas import build_dash_atlas, query_file
from helpers.servers import cli, server_process, server_thread

from bioclip_nb.config import Settings
from bioclip_nb.errors import ServerUnavailableError
from bioclip_nb.images.fetch import FetchStatus, ImageFetcher
from bioclip_nb.images.uploads import MAX_UPLOAD_BYTES, load_upload
from bioclip_nb.layout import BIOCLIP2
from bioclip_nb.request import SearchRequest
from bioclip_nb.service.client import Client, connect
from bioclip_nb.service.statefile import STATE_FILE, ServerRecord, read_record, write_record
from bioclip_nb.testing.imagehost import ImageHost


@pytest.fixture(scope="module")
def atlas(tmp_path_factory, host, tiny_bioclip):
    return build_dash_atlas(tmp_path_factory.mktemp("served"), host.base, BIOCLIP2)


@pytest.fixture(scope="module")
def served(atlas, tmp_path_factory):
    home = tmp_path_factory.mktemp("server-home")
    with server_process(atlas, home, "--batch-ms", "5") as (proc, record):      # batching on, as on a GPU
        yield proc, record, home


def _api(record: ServerRecord, path: str) -> str:
    return f"{record.url}/v1{path}"


def _auth(record: ServerRecord) -> dict:
    return {"Authorization": f"Bearer {record.token}"}


def test_the_record_is_private_and_names_the_server(served, atlas):
    proc, record, home = served
    assert (os.stat(home / STATE_FILE).st_mode & 0o777) == 0o600
    assert record.pid == proc.pid and record.url.startswith("http://127.0.0.1:")
    assert record.atlas == str(atlas) and record.model == BIOCLIP2


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic x"}])
def test_every_route_needs_the_token(served, headers):
    _, record, _ = served
    for method, path in [("get", "/health"), ("get", "/info"), ("post", "/search"), ("post", "/encode")]:
        resp = getattr(requests, method)(_api(record, path), headers=headers, timeout=10)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.json()["error"] == "unauthorised" and "token" in resp.json()["message"]


def test_openapi_docs_are_served(served):
    _, record, _ = served
    spec = requests.get(f"{record.url}/openapi.json", timeout=10).json()
    assert "/v1/search" in spec["paths"] and "/v1/encode" in spec["paths"]
    assert requests.get(f"{record.url}/docs", timeout=10).status_code == 200


def test_an_oversized_upload_is_refused_with_413(served):
    _, record, _ = served
    resp = requests.post(_api(record, "/encode"), data=b"\xff" * (MAX_UPLOAD_BYTES + 1), headers=_auth(record), timeout=60)
    assert resp.status_code == 413 and resp.json()["error"] == "too_large" and "MB" in resp.json()["message"]


@pytest.mark.parametrize("body", [b"field notes, not a photo", b"\xff\xd8\xff" + b"\x00" * 500, b"GIF89a" + b"\x01" * 10])
def test_a_bad_image_gets_422_with_the_message_the_cli_gives(served, body, tmp_path):
    _, record, home = served
    resp = requests.post(_api(record, "/encode"), data=body, headers=_auth(record), timeout=30)
    assert resp.status_code == 422 and resp.json()["error"] == "bad_image"
    with pytest.raises(Exception) as local:
        load_upload(body)
    assert resp.json()["message"] == str(local.value)
    path = tmp_path / "upload"
    path.write_bytes(body)
    out = cli("search", str(path), "--server", record.url, home=home)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert str(local.value).split(" ", 1)[1] in out.stderr        # the same words after the file's name


@pytest.mark.parametrize("payload", [b"{not json", b'{"vectors": "many", "top_n": 10}', b'{"top_n": 10}',
                                     b'{"vectors": [0.1, 0.2], "top_n": 10}', b'{"query_id": "unknown"}'])
def test_malformed_requests_get_json_errors(served, payload):
    _, record, _ = served
    resp = requests.post(_api(record, "/search"), data=payload, timeout=10,
                         headers={**_auth(record), "Content-Type": "application/json"})
    assert resp.status_code in (404, 422), resp.text
    body = resp.json()
    assert set(body) >= {"error", "message"} and "Traceback" not in resp.text and body["message"]


@pytest.mark.slow
def test_sixteen_concurrent_clients_each_get_their_own_answer(served, atlas):
    from bioclip_nb.core.atlas import Atlas
    from bioclip_nb.encoders import load_encoder
    _, record, _ = served
    files = sorted((atlas.parent / "collection").glob("*.jpg"))[:16]
    with Atlas.open(atlas) as local:
        encoder = load_encoder(local.model, device="cpu")
        expected = [local.search(encoder.encode(load_upload(f)).embedding, top_n=5)["id"].tolist() for f in files]
    before = Client(record.url, record.token).health()["batches"]
    barrier = threading.Barrier(len(files))

    def one(path):
        client = Client(record.url, record.token)
        barrier.wait()
        query_id, enc = client.encode(path.read_bytes())
        return client.search(query_id=query_id, top_n=5)["id"].tolist(), enc

    with ThreadPoolExecutor(len(files)) as pool:
        got = list(pool.map(one, files))
    assert [ids for ids, _ in got] == expected
    assert all(enc.predict("species") for _, enc in got)            # predictions came along
    after = Client(record.url, record.token).health()["batches"]
    passes = after["passes"] - before["passes"]
    assert after["requests"] - before["requests"] == 16
    assert passes < 16 and after["largest"] > 1, after             # some arrived together and shared a pass


def test_batching_is_on_for_gpus_and_off_on_a_cpu(tiny_bioclip):
    from bioclip_nb.encoders import load_encoder
    from bioclip_nb.service.warm import default_window
    encoder = load_encoder(BIOCLIP2, device="cpu")
    assert default_window(encoder) == 0.0
    assert default_window(type("Gpu", (), {"device": "cuda:0"})()) > 0


@pytest.mark.slow
def test_the_cli_through_the_server_answers_as_in_process(served, atlas):
    _, record, home = served
    q = query_file(atlas.parent, "Parus")
    args = ["search", str(q), "--top-n", "5", "--taxon", "kingdom=Animalia"]
    via = cli(*args, "--server", record.url, home=home)
    local = cli(*args, "--atlas", str(atlas), "--local", home=home)
    assert via.returncode == 0 and local.returncode == 0, via.stderr + local.stderr
    assert _untimed(json.loads(via.stdout)) == _untimed(json.loads(local.stdout))
    text = ["search", "--text", "Vulpes vulpes", "--format", "csv"]
    via, local = cli(*text, "--server", record.url, home=home), cli(*text, "--atlas", str(atlas), "--local", home=home)
    assert via.returncode == 0 and "Vulpes" in via.stdout, via.stderr
    assert _untimed(pd.read_csv(io.StringIO(via.stdout))).equals(_untimed(pd.read_csv(io.StringIO(local.stdout))))
    # a restricted prediction and the one-row-per-photo summary, through the server's /v1/predict
    summary = ["search", str(q), "--format", "summary", "--predict-within", "genus=Vulpes"]
    via, local = cli(*summary, "--server", record.url, home=home), cli(*summary, "--atlas", str(atlas), "--local", home=home)
    assert via.returncode == 0 and local.returncode == 0, via.stderr + local.stderr
    a, b = _untimed(pd.read_csv(io.StringIO(via.stdout))), _untimed(pd.read_csv(io.StringIO(local.stdout)))
    assert a.equals(b) and a["prediction"].iloc[0].startswith("Vulpes ") and a["prediction_within"].iloc[0] == "genus Vulpes"


def _untimed(rows):
    """Results without the search time (two searches seconds apart differ only there)."""
    if isinstance(rows, pd.DataFrame):
        return rows.drop(columns="searched_at")
    return [{**s, "provenance": {k: v for k, v in s["provenance"].items() if k != "searched_at"}} for s in rows["searches"]]


@pytest.mark.slow
def test_a_server_for_another_atlas_is_not_used(served, tmp_path, published_atlas):
    _, _, home = served
    out = cli("search", "--vectors", str(_vector_file(tmp_path, published_atlas.vectors.shape[1])), "--atlas", str(published_atlas.path),
              home=home, env={"BIOCLIP_NB_AUTOSTART": "1"})
    assert out.returncode == 0 and "serves" in out.stderr and "searching in-process" in out.stderr


def _vector_file(tmp_path, dim: int):
    path = tmp_path / "q.npy"
    np.save(path, np.random.default_rng(0).normal(size=dim).astype(np.float32))
    return path


@pytest.mark.slow
def test_the_cli_starts_a_server_and_the_second_search_uses_it(atlas, tmp_path):
    home = tmp_path / "home"
    q = query_file(atlas.parent, "Vulpes")
    env = {"BIOCLIP_NB_AUTOSTART": "1"}
    first = cli("search", str(q), "--atlas", str(atlas), home=home, env=env)
    assert first.returncode == 0, first.stderr
    assert "starting a bioclip-nb server" in first.stderr
    record = read_record(home)
    assert record is not None and record.alive() and record.idle_minutes == 30
    try:
        second = cli("search", str(q), "--atlas", str(atlas), home=home, env=env)
        assert second.returncode == 0 and "starting" not in second.stderr, second.stderr
        assert _untimed(json.loads(second.stdout)) == _untimed(json.loads(first.stdout))
        unnamed = cli("search", str(q), home=home, env=env)         # no atlas named: the running server's
        assert unnamed.returncode == 0 and not unnamed.stderr, unnamed.stderr
        assert _untimed(json.loads(unnamed.stdout)) == _untimed(json.loads(second.stdout))
        health = Client(record.url, record.token).health()
        assert health["batches"]["requests"] == 1          # encoded once: the second upload was remembered
        status = cli("status", home=home)
        assert status.returncode == 0 and record.url in status.stdout and "ready" in status.stdout
    finally:
        stopped = cli("stop", home=home)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not record.alive() and read_record(home) is None
    assert cli("status", home=home).returncode == 3


@pytest.mark.slow
def test_sigkill_mid_request_gives_messages_and_a_stale_record_is_cleaned(atlas, tmp_path, tiny_bioclip):
    home = tmp_path / "home"
    with ImageHost(latency=3.0) as slow:
        root = tmp_path / "slow"
        slow_atlas = build_dash_atlas(root, slow.base, BIOCLIP2)
        with server_process(slow_atlas, home) as (proc, record):
            conn = connect(record.url, record.token)
            hits = conn.atlas.search(np.ones(conn.atlas.dim, dtype=np.float32), top_n=20)
            with_url = int(hits[hits["url"].notna() & hits["url"].str.contains("/img/")]["id"].iloc[0])
            result = {}
            waiting = threading.Thread(target=lambda: result.update(r=conn.fetcher.fetch(None, key=with_url)))
            waiting.start()
            time.sleep(1.0)                                   # the server is waiting on the slow host
            os.kill(proc.pid, signal.SIGKILL)
            waiting.join(30)
            proc.wait(10)
    r = result["r"]
    assert r.status is FetchStatus.ERROR and ("not answering" in r.message or "could not" in r.message), r
    with pytest.raises(ServerUnavailableError, match="not answering"):
        conn.atlas.search(np.ones(conn.atlas.dim, dtype=np.float32))
    assert (home / STATE_FILE).is_file()                      # SIGKILL left the record behind ...
    explicit = cli("search", "--text", "fox", "--server", record.url, home=home)
    assert explicit.returncode == 1 and "not answering" in explicit.stderr and "Traceback" not in explicit.stderr
    status = cli("status", home=home)
    assert status.returncode == 3 and not (home / STATE_FILE).exists()     # ... and the next reader removed it
    write_record(home, record)                                # stale again: the CLI searches here instead
    fallback = cli("search", str(query_file(root)), "--atlas", str(slow_atlas), home=home,
                   env={"BIOCLIP_NB_AUTOSTART": "0"})
    assert fallback.returncode == 0 and json.loads(fallback.stdout), fallback.stderr
    assert not (home / STATE_FILE).exists()


@pytest.mark.slow
def test_the_cli_falls_back_when_the_server_dies_between_calls(atlas, tmp_path):
    home = tmp_path / "home"
    with server_process(atlas, home) as (proc, record):
        dead = ServerRecord(**{**record.__dict__})
    # the process is gone but a record pointing at a live pid (ours) and a closed port remains
    write_record(home, ServerRecord(**{**dead.__dict__, "pid": os.getpid()}))
    out = cli("search", str(query_file(atlas.parent)), "--atlas", str(atlas), home=home, env={"BIOCLIP_NB_AUTOSTART": "1"})
    assert out.returncode == 0 and "not answering" in out.stderr and "searching in-process" in out.stderr, out.stderr
    assert json.loads(out.stdout)


@pytest.mark.slow
def test_idle_shutdown(atlas, tmp_path):
    home = tmp_path / "home"
    with server_process(atlas, home, "--idle-minutes", "0.05") as (proc, record):
        Client(record.url, record.token).info()             # one request, then nothing
        proc.wait(30)
        assert proc.returncode == 0
    assert read_record(home) is None and not (home / STATE_FILE).exists()
    assert "idle" in (home / "serve.log").read_text()


@pytest.mark.slow
def test_two_servers_on_one_port_or_one_home_are_refused(served, atlas, tmp_path):
    _, record, home = served
    port = record.url.rsplit(":", 1)[1]
    other = cli("serve", "--atlas", str(atlas), "--port", port, home=tmp_path / "other", timeout=60)
    assert other.returncode == 1 and f"port {port}" in other.stderr and "already in use" in other.stderr
    same = cli("serve", "--atlas", str(atlas), "--port", "0", home=home, timeout=60)
    assert same.returncode == 1 and "already runs" in same.stderr and "bioclip-nb stop" in same.stderr


def test_busy_server_answers_503_with_retry_after(atlas, tmp_path, host):
    from bioclip_nb.core.atlas import Atlas
    from bioclip_nb.service.server import Limits
    from bioclip_nb.service.warm import Warm
    warm = Warm(Atlas.open(atlas), Settings(home=tmp_path), device="cpu")
    warm.in_flight = 1                                         # as if one request were running
    with server_thread(warm, "t" * 32, limits=Limits(max_concurrent=1)) as url:
        resp = requests.get(f"{url}/v1/info", headers={"Authorization": "Bearer " + "t" * 32}, timeout=10)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "1" and resp.json()["error"] == "busy"
        assert requests.get(f"{url}/v1/health", headers={"Authorization": "Bearer " + "t" * 32}, timeout=10).ok
    warm.close()


def test_user_urls_pass_the_address_guard_on_the_server(served, host):
    _, record, _ = served
    r = Client(record.url, record.token).fetch_url(host.url("/img/1.jpg"))
    assert r.status is FetchStatus.BLOCKED and "127.0.0.1" in r.message


@pytest.mark.slow
def test_four_dashboards_through_one_server_keep_the_inaturalist_gap(tmp_path, tiny_bioclip):
    """Four people's galleries fetched by one server: its fetcher spaces iNaturalist requests 1 s apart."""
    from bioclip_nb.core.atlas import Atlas
    from bioclip_nb.dashboard import Dashboard
    from bioclip_nb.service.warm import Warm
    inat = "https://static.inaturalist.org"
    root = tmp_path / "inat"
    inat_atlas = build_dash_atlas(root, inat, BIOCLIP2)
    with ImageHost() as images:
        fetcher = ImageFetcher(resolve={"static.inaturalist.org": images.base}, state_dir=tmp_path / "state")
        warm = Warm(Atlas.open(inat_atlas), Settings(home=tmp_path / "server"), device="cpu", fetcher=fetcher)
        with server_thread(warm, "k" * 32) as url:
            settings = Settings(home=tmp_path / "kernel", server=url, token="k" * 32)
            boards = [Dashboard.from_settings(settings=settings) for _ in range(4)]
            for board, genus in zip(boards, ["Vulpes", "Parus", "Amanita", "Perca"]):
                board.widget
                board.upload_bytes(query_file(root, genus).read_bytes(), f"{genus}.jpg")
            for board in boards:
                board.controls.top_n.value = 20
                board.search()
            for board in boards:
                board.wait(120)
            log = images.requests_for("/img/")
        warm.close()
    assert len(log) >= 4
    log = sorted(log, key=lambda r: r.start)
    gaps = [b.start - a.start for a, b in zip(log, log[1:])]
    assert min(gaps) >= 1.0 and max(r.concurrent for r in log) == 1, gaps
    shown = [sum(1 for r in b.session.images.values() if r.ok) for b in boards]
    assert all(n >= 1 for n in shown), shown


@pytest.mark.slow
def test_the_dashboard_through_a_server(atlas, tmp_path):
    """The same dashboard from a kernel holding no model: search, gallery, details, more like this,
    plots; the server killed (a message, nothing lost) and back on its port (it works again)."""
    from bioclip_nb.dashboard import Dashboard
    home = tmp_path / "home"
    with server_process(atlas, home) as (proc, record):
        board = Dashboard.from_settings(settings=Settings(home=home, server=record.url))
        assert isinstance(board, Dashboard), getattr(board, "value", board)
        board.widget
        assert f"served by {record.url}" in board.widget.children[0].value
        board.upload_bytes(query_file(atlas.parent, "Vulpes").read_bytes(), "fox.jpg")
        assert board.session.encoding.predict("species")
        board.search()
        board.wait(60)
        s = board.session
        assert len(s.hits) == 10 and s.hits["genus"].iloc[0] == "Vulpes"
        for hit_id, r in s.images.items():           # the hostile javascript: URLs are refused, the rest arrive
            hostile = str(s.hit(hit_id)["url"]).startswith("javascript:")
            assert r.status is (FetchStatus.BLOCKED if hostile else FetchStatus.OK), (s.hit(hit_id)["url"], r)
        assert any(r.ok for r in s.images.values())
        first = int(s.hits["id"].iloc[0])
        board.select(first)
        board.wait(30)
        board.more_like()
        board.wait(30)
        assert s.query.kind == "result" and s.hits["id"].iloc[0] == first          # its own stored vector
        board.show_tab("plots")
        board.wait(60)
        assert "exact (flat) index" in board.tabs["plots"].note.value      # this small atlas has no cells to show
        proc.kill()
        proc.wait(10)
        board.search()
        board.wait(30)
        assert "not answering" in board.status.value and "press Search again" in board.status.value
        assert len(s.hits) == 10                                      # nothing lost
        port = record.url.rsplit(":", 1)[1]
    with server_process(atlas, home, "--port", port):
        board.search()
        board.wait(60)
        assert "not answering" not in board.status.value and len(s.hits) == 10


@pytest.mark.slow
def test_the_plots_come_from_the_server_as_they_would_locally(published_atlas, tmp_path):
    from bioclip_nb.core.atlas import Atlas
    from bioclip_nb.insight.figures import LocalFigures
    home = tmp_path / "home"
    query = published_atlas.vectors[7]
    with server_process(published_atlas.path, home) as (_, record):
        conn = connect(record.url, record.token)
        hits = conn.atlas.search(query, top_n=10, nprobe=4)
        remote = conn.figures.search(query, SearchRequest(nprobe=4), hits)
        png = conn.figures.map(query, 4, hits)
    with Atlas.open(published_atlas.path) as local:
        assert LocalFigures(local).search(query, SearchRequest(nprobe=4), hits).note == remote.note
    assert remote.cells_png[:8] == remote.recall_png[:8] == png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "the first 4 were scanned" in remote.note


@pytest.mark.slow
def test_a_server_backed_kernel_loads_no_model_and_no_index(served):
    """In a fresh interpreter: the dashboard through the server never imports torch or FAISS."""
    import subprocess
    import sys
    _, record, home = served
    code = ("import sys; from bioclip_nb.dashboard import Dashboard; from bioclip_nb.config import Settings; "
            f"d = Dashboard.from_settings(settings=Settings(home={str(home)!r}, server={record.url!r})); d.widget; "
            "d.session.set_text('Vulpes vulpes'); d.session.search(); "
            "print(sorted(m for m in ('torch', 'faiss', 'open_clip', 'duckdb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, BIOCLIP_NB_HOME=str(home)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "atlas://../../../etc/passwd", "/etc/passwd",
                                 "http://127.0.0.1:1/x.jpg", "http://[::1]/x.jpg"])
def test_no_path_or_local_address_from_a_client_is_ever_opened(served, url):
    _, record, _ = served
    resp = requests.post(_api(record, "/fetch-url"), json={"url": url}, headers=_auth(record), timeout=30)
    assert resp.status_code == 502 and resp.json()["error"] == "fetch_failed"
    assert resp.json()["fetch"]["status"] in ("blocked", "error") and "passwd" not in resp.text.replace(url, "")


def test_a_request_that_runs_too_long_gets_504(atlas, tmp_path):
    from bioclip_nb.core.atlas import Atlas
    from bioclip_nb.service.server import Limits
    from bioclip_nb.service.warm import Warm
    with ImageHost(latency=3.0) as slow:
        fetcher = ImageFetcher.isolated(resolve={"slow.test": slow.base})
        warm = Warm(Atlas.open(atlas), Settings(home=tmp_path), device="cpu", fetcher=fetcher)
        hits = warm.atlas.search(np.ones(warm.atlas.dim, dtype=np.float32), top_n=40)   # not timed: only the image is
        with server_thread(warm, "t" * 32, limits=Limits(timeout=0.5)) as url:
            some = int(hits[hits["url"].fillna("").str.contains("/img/")]["id"].iloc[0])
            warm.fetcher.resolve = {"127.0.0.1": slow.base}                  # every image host is now slow
            t0 = time.monotonic()
            resp = requests.get(f"{url}/v1/records/{some}/image", headers={"Authorization": "Bearer " + "t" * 32},
                                timeout=30)
            assert resp.status_code == 504 and resp.json()["error"] == "timeout" and time.monotonic() - t0 < 2.5
        warm.close()
