"""Host policies hold per machine: across threads, lanes and processes (real servers on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from bioclip_nb.images import FetchStatus, HostPolicy, ImageFetcher
from bioclip_nb.images.policy import HostLedger
from bioclip_nb.testing.imagehost import ImageHost

INAT = "static.inaturalist.org"
S3 = "inaturalist-open-data.s3.amazonaws.com"

CHILD = """
import json, sys
from pathlib import Path
from bioclip_nb.images import HostPolicy, ImageFetcher
base, state, first, n, budget = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
policies = {} if budget == "-" else {"static.inaturalist.org": HostPolicy(1.0, 1, int(budget))}
f = ImageFetcher(resolve={"static.inaturalist.org": base}, state_dir=state, policies=policies)
urls = [(i, f"https://static.inaturalist.org/photos/{i}/original.jpg") for i in range(first, first + n)]
print(json.dumps([r.status.value for r in f.fetch_many(urls)]))
f.close()
"""


#: The README's example, as a user's script writes it: no state_dir, no ledger named.
README_CHILD = """
import json, sys
from bioclip_nb.images import ImageFetcher
base, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
f = ImageFetcher(resolve={"static.inaturalist.org": base})
urls = [(i, f"https://static.inaturalist.org/photos/{i}/original.jpg") for i in range(first, first + n)]
print(json.dumps([r.status.value for r in f.fetch_many(urls)]))
f.close()
"""


def test_the_default_fetcher_keeps_the_machine_wide_spacing_across_processes(tmp_path):
    """Three scripts each building ``ImageFetcher()`` with defaults share the machine's ledger
    (found through BIOCLIP_NB_HOME), so the iNaturalist host sees one request a second."""
    import os
    env = dict(os.environ, BIOCLIP_NB_HOME=str(tmp_path / "home"))
    env.pop("BIOCLIP_NB_STATE_DIR", None)
    with ImageHost() as host:
        procs = [subprocess.Popen([sys.executable, "-c", README_CHILD, host.base, str(100 * k), "2"],
                                  stdout=subprocess.PIPE, text=True, env=env) for k in range(3)]
        statuses = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        log = host.requests_for("/photos/")
    assert all(s == "ok" for per in statuses for s in per) and len(log) == 6
    gaps, most_at_once, serial = _spacing(log)
    assert min(gaps) >= 1.0, gaps
    assert most_at_once == 1 and serial
    assert (tmp_path / "home" / "state").is_dir()


def test_isolated_is_the_named_opt_out(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOCLIP_NB_HOME", str(tmp_path / "home"))
    from bioclip_nb.images.policy import LEDGER_FILE
    assert ImageFetcher().ledger.path == tmp_path / "home" / "state" / LEDGER_FILE
    assert ImageFetcher.isolated().ledger.path is None


def _run_children(host: ImageHost, state, n_each: int, budget: str = "-") -> list[list[str]]:
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, host.base, str(state), str(100 * k), str(n_each), budget],
                              stdout=subprocess.PIPE, text=True) for k in range(3)]
    return [json.loads(p.communicate(timeout=120)[0]) for p in procs]


def _spacing(log) -> tuple[list[float], int, bool]:
    log = sorted(log, key=lambda r: r.start)
    gaps = [b.start - a.start for a, b in zip(log, log[1:])]
    serial = all(a.end <= b.start for a, b in zip(log, log[1:]))
    return gaps, max(r.concurrent for r in log), serial


def test_three_processes_keep_one_gate_for_the_inaturalist_host(tmp_path):
    with ImageHost() as host:
        statuses = _run_children(host, tmp_path / "state", n_each=3)
        log = host.requests_for("/photos/")
    assert all(s == "ok" for per in statuses for s in per)
    assert len(log) == 9
    gaps, most_at_once, serial = _spacing(log)
    assert min(gaps) >= 1.0, gaps              # never two requests less than 1.0 s apart (server's clock)
    assert most_at_once == 1 and serial        # never two at once


def test_three_processes_share_one_budget(tmp_path):
    with ImageHost() as host:
        one = len(host.bytes_for("medium", 100))
        budget = int(one * 2.5)                # the pictures differ a little in size: about 3 fit
        statuses = _run_children(host, tmp_path / "state", n_each=3, budget=str(budget))
        log = host.requests_for("/photos/")
        sizes = [len(host.bytes_for("medium", int(r.path.split("/")[2]))) for r in log]
    flat = [s for per in statuses for s in per]
    assert flat.count("budget_exceeded") >= 5 and len(log) == flat.count("ok") <= 4
    assert sum(sizes) <= budget + 25 * 2**20   # at most one body cap over


def test_the_budget_is_reserved_before_the_request_under_eight_workers():
    with ImageHost(latency=0.2) as host:
        one = len(host.bytes_for("medium", 0))
        cap = 4 * one
        from bioclip_nb.images import FetchLimits
        policy = HostPolicy(max_concurrency=8, hourly_bytes=int(one * 2.5))
        f = ImageFetcher.isolated(policies={INAT: policy}, resolve={INAT: host.base}, limits=FetchLimits(max_bytes=cap))
        urls = [(i, f"https://{INAT}/photos/{i}/original.jpg") for i in range(8)]
        results = list(f.fetch_many(urls))
        f.close()
        made = host.requests_for("/photos/")
    statuses = [r.status for r in results]
    assert statuses.count(FetchStatus.BUDGET_EXCEEDED) >= 4 and "budget" in next(
        r.message for r in results if r.status is FetchStatus.BUDGET_EXCEEDED)
    assert len(made) == statuses.count(FetchStatus.OK) <= 4
    assert sum(r.nbytes for r in results) <= policy.hourly_bytes + cap    # at most one body cap over


def test_a_slow_host_does_not_hold_up_another_hosts_images():
    with ImageHost() as host:
        f = ImageFetcher.isolated(resolve={INAT: host.base, S3: host.base})
        urls = []
        for i in range(10):                   # interleaved, as a gallery's hits come
            urls.append((f"inat{i}", f"https://{INAT}/photos/{i}/original.jpg"))
            urls.append((f"s3{i}", f"https://{S3}/photos/{100 + i}/original.jpg"))
        t0 = time.monotonic()
        arrived: dict[str, float] = {}
        cancel = threading.Event()
        for r in f.fetch_many(urls, cancel=cancel):
            arrived[r.key] = time.monotonic() - t0
            if sum(k.startswith("s3") for k in arrived) == 10:
                cancel.set()                  # the point is made; do not wait out the slow host
        f.close()
        host.wait_idle()
    s3 = [t for k, t in arrived.items() if k.startswith("s3")]
    inat = [k for k in arrived if k.startswith("inat")]
    assert len(s3) == 10 and max(s3) < 1.5, sorted(s3)     # all ten in about a second
    assert len(inat) <= 3                                 # the 1/s host had time for about two


def test_a_crashed_process_gives_its_slot_back(tmp_path):
    ledger = HostLedger(tmp_path / "hosts.sqlite")
    policy = HostPolicy(max_concurrency=1)
    child = subprocess.run([sys.executable, "-c", (
        "import sys; from pathlib import Path; from bioclip_nb.images.policy import HostLedger, HostPolicy\n"
        "t, w, s = HostLedger(Path(sys.argv[1])).try_acquire('h', HostPolicy(max_concurrency=1), 10)\n"
        "print(t is not None)"), str(tmp_path / "hosts.sqlite")], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "True"      # it took the only slot, then exited without releasing it
    token, _, _ = ledger.try_acquire("h", policy, 10)
    assert token is not None


def test_an_unwritable_state_directory_keeps_the_policy_in_this_process(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ledger = HostLedger(blocker / "state" / "hosts.sqlite")
    assert not ledger.shared
    assert ledger.try_acquire("h", HostPolicy(max_concurrency=1), 10)[0] is not None
    assert ledger.try_acquire("h", HostPolicy(max_concurrency=1), 10)[0] is None


@pytest.mark.parametrize("shared", [True, False])
def test_spacing_counts_from_the_answer(tmp_path, shared):
    ledger = HostLedger(tmp_path / "hosts.sqlite" if shared else None)
    policy = HostPolicy(min_interval=1.0, max_concurrency=4)
    token, _, _ = ledger.try_acquire("h", policy, 10)
    answered = time.time() + 0.5                # a slow answer
    ledger.release("h", token, 100, answered, policy)
    _, wait, _ = ledger.try_acquire("h", policy, 10)
    assert wait >= 1.4                           # 1.0 s after the answer, not after the start
    assert ledger.hour_bytes("h") == 100
