"""The explorer in a real browser: Debian's chromium driven by Selenium (chromium-driver) against a
whole stack (tests/executor/stack.py: anvil, Redis, the indexer, Podman, a provider executor) and
`depin explorer` serving the index.

The overview is opened once; a job posted through the SDK (``depin.Client.post_job``) must appear
on it and move to Finalized without a reload (server-sent events; the test polls the DOM with
WebDriverWait, no sleeps). The job page's timeline is checked against the chain's logs, the
provider page against `depin provider status --json`. Screenshots at 1280 px and 390 px go to
``$DEPIN_ARTIFACTS`` (else a temporary folder), never into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from depin.accounts import dev_account
from depin.client import Client
from depin.deployment import REPO_ROOT
from depin.market import JobStatus
from depinctl.procs import ManagedProcess, free_port
from tests.executor.stack import PROVIDER, REQUESTER, TOKEN, Stack, spec, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)
DESKTOP, PHONE = (1280, 900), (390, 844)

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="Debian chromium and chromium-driver are not installed (tools/setup.sh installs them)",
)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("DEPIN_ARTIFACTS") or tempfile.mkdtemp(prefix="depin-explorer-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def explorer(stack: Stack) -> Iterator[str]:
    """`depin explorer` on a free port, over the stack's index and node."""
    port = free_port()
    env = dict(os.environ, DEPIN_REDIS_URL=stack.redis.url(0), DEPIN_RPC_URL=stack.anvil.url,
               DEPIN_DEPLOYMENT=str(stack.deployment_file), PYTHONPATH=str(REPO_ROOT))
    proc = ManagedProcess("explorer", [sys.executable, "-m", "depinctl.cli", "explorer", "--port", str(port)],
                          log_path=stack.tmp / "explorer.log", cwd=REPO_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/healthz"), 60, "the explorer to answer")
        yield url
    finally:
        proc.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return driver.find_element("css selector", css).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def _attr(driver, css: str, name: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return driver.find_element("css selector", css).get_attribute(name)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _screenshots(driver, folder: Path, name: str) -> list[Path]:
    shots = []
    for label, (w, h) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(w, h)
        path = folder / f"{name}-{label}-{w}px.png"
        assert driver.save_screenshot(str(path)), path
        shots.append(path)
        # readable at this width: nothing wider than the viewport but scrollable tables
        overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 2, f"{name} at {w}px overflows horizontally by {overflow}px"
    driver.set_window_size(*DESKTOP)
    return shots


def test_a_job_appears_and_finalizes_live_then_job_and_provider_pages_match_the_chain(
    stack: Stack, explorer: str, browser, artifacts: Path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(explorer + "/")
    WebDriverWait(driver, 20).until(lambda d: _text(d, "#live-state") == "live")
    posted_before = int(_text(driver, "#jobs-total") or 0)

    requester = Client.connect(stack.anvil.url, stack.deployment_file, dev_account(REQUESTER, stack.deployment.chain_id))
    job_spec = spec(stack.images["busybox"], ["sh", "-c", "echo explorer > /out/hello.txt"])
    posted = requester.post_job(job_spec, reward=TOKEN, verify="none", challenge_window=8, collateral_pct=400, claim_window=600)
    job_id = posted.job_id

    # the row appears, then reaches Finalized, on the page loaded before the post (no reload)
    row = f"#job-row-{job_id}"
    WebDriverWait(driver, 30, poll_frequency=0.05).until(lambda d: _attr(d, row, "data-status") is not None)
    seen_at = time.time()
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=120)  # the chain first (its failure shows the executor's logs)
    try:
        WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda d: _attr(d, row, "data-status") == "Finalized")
    except TimeoutException:
        raise AssertionError(f"the overview shows job {job_id} as {_attr(driver, row, 'data-status')!r}, the chain as Finalized; "
                             f"live state {_text(driver, '#live-state')!r}") from None
    assert driver.execute_script("return performance.getEntriesByType('navigation').length") == 1  # never reloaded
    WebDriverWait(driver, 10).until(lambda d: int(_text(d, "#jobs-total") or 0) == posted_before + 1)
    # the executor's /metrics counted the claim, the run (and its container time) and the submission
    from prometheus_client.parser import text_string_to_metric_families

    scraped = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in
               text_string_to_metric_families(requests.get(stack.executor_metrics_url, timeout=5).text) for s in f.samples}
    assert scraped[("depin_executor_jobs_claimed_total", ())] >= 1
    assert scraped[("depin_executor_jobs_run_total", (("kind", "result"),))] >= 1
    assert scraped[("depin_executor_jobs_submitted_total", (("kind", "result"),))] >= 1
    assert scraped[("depin_executor_container_run_seconds_count", ())] >= 1
    WebDriverWait(driver, 10).until(lambda d: f"job {job_id}" in _text(d, "#feed"))
    posted_entry = next(i for i, f in stack.index().xrange(stack.keys.events)
                        if f.get("event") == "JobPosted" and json.loads(f["args"]).get("jobId") == str(job_id))
    # a figure for the report, not an assertion: from the indexer's write of the event to the row on the page
    print(f"job {job_id} appeared on the overview {seen_at - int(posted_entry.split('-')[0]) / 1000:.2f} s after the indexer applied JobPosted")
    shots = _screenshots(driver, artifacts, "overview")

    # the job page: its timeline is the chain's events of the job, with their blocks and txs
    driver.get(f"{explorer}/job/{job_id}")
    WebDriverWait(driver, 10).until(lambda d: _text(d, "#job-status") == "Finalized")
    rows = driver.find_elements("css selector", "#timeline tbody tr")
    shown = [(r.get_attribute("data-event"), int(r.get_attribute("data-block")), r.get_attribute("data-tx")) for r in rows]
    indexed = [(e["event"], int(e["block"]), e["tx"]) for e in stack.events(job_id)]
    assert shown == indexed
    assert [e for e, _, _ in shown][:1] == ["JobPosted"] and shown[0][2].lower() == posted.tx_hash.lower()
    for name in {e for e, _, _ in shown}:
        assert sum(1 for e, _, _ in shown if e == name) == stack.chain_log_count(job_id, name), name
    assert {"JobPosted", "JobClaimed", "ResultSubmitted", "JobFinalized"} <= {e for e, _, _ in shown}
    submitted = stack.events(job_id, "ResultSubmitted")[0]["args"]
    assert submitted["resultURI"] in _text(driver, "#result") and submitted["commitment"].lower() in _text(driver, "#result").lower()
    assert "provider payout" in _text(driver, "#payout")
    shots += _screenshots(driver, artifacts, "job")

    # the provider page against `depin provider status --json` (the chain's record)
    provider = stack.accounts[PROVIDER]
    driver.get(f"{explorer}/provider/{provider}")
    WebDriverWait(driver, 10).until(lambda d: _attr(d, "#p-staked", "data-base") is not None)
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "depinctl.cli", "provider", "status", provider, "--json", "--rpc-url", stack.anvil.url,
         "--deployment", str(stack.deployment_file)],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=60,
    ).stdout)

    def matches(d) -> bool:
        return (_attr(d, "#p-staked", "data-base") == status["staked"] and _attr(d, "#p-locked", "data-base") == status["locked"]
                and _text(d, "#p-completed") == str(status["jobsCompleted"]) and _text(d, "#p-slashed") == str(status["jobsSlashed"]))

    if not matches(driver):  # the index may trail the chain by a block: the page catches up live
        stack.synced()
        WebDriverWait(driver, 15).until(matches)
    assert status["jobsCompleted"] >= 1 and driver.find_elements("css selector", "#provider-main svg.chart")
    shots += _screenshots(driver, artifacts, "provider")
    assert all(p.stat().st_size > 1000 for p in shots)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/job/987654", 404, "job 987654 is not in the index"),
        ("/job/not-a-number", 400, "not a job id"),
        (f"/job/{2**256}", 400, "larger than 2^256-1"),
        ("/provider/0xnothex", 400, "not an address"),
        ("/search?q=0x" + "42" * 20, 404, "is not a provider, requester or verifier"),
    ],
)
def test_bad_input_pages_are_4xx_and_say_what_is_wrong(explorer: str, browser, path: str, status: int, says: str) -> None:
    assert requests.get(explorer + path, timeout=10).status_code == status
    browser.get(explorer + path)
    assert says in browser.find_element("css selector", "#error-message").text
    assert browser.find_element("css selector", "h1").text.startswith(str(status))
