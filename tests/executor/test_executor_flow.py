"""The provider executor end to end on real services: anvil, redis-server, the indexer, Podman
containers and Celery worker processes (tests/executor/stack.py)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import keccak

from depin.accounts import dev_account
from depin.client import Client, ResultSealed
from depin.commitment import commitment
from depin.delivery import public_key_of
from depin.market import FailureCode, JobStatus
from depin.outputs import read_exit_code
from executor.containers import managed_containers

from .stack import PROVIDER, PROVIDER2, REQUESTER, REQUESTER2, TOKEN, Stack, spec, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("flow"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        # an empty image allowlist: any image the engine holds under the pinned digest
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512})
        yield s
    finally:
        s.close()


def test_happy_path_claim_run_submit_finalize_withdraw(stack: Stack, tmp_path: Path) -> None:
    provider = stack.accounts[PROVIDER]
    wallet_before = stack.market.token_balance(provider)
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo hello > /out/hello.txt"]))
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=60)
    job = stack.job(job_id)
    assert job["provider"] == provider
    submitted = stack.events(job_id, "ResultSubmitted")
    assert len(submitted) == 1
    onchain = submitted[0]["args"]["commitment"].lower()
    uri = submitted[0]["args"]["resultURI"]
    body = stack.download(uri)
    archive = tmp_path / "r.tar"
    archive.write_bytes(body)
    assert read_exit_code(archive) == 0
    # only the salted commitment went on chain; the URI names the archive opaquely; the journal
    # kept the salt, and the manifest next to the archive lets the requester check it
    ex = stack.provider
    journaled = json.loads((ex.workdir / "state" / "journal" / ex.instance() / f"{job_id}.json").read_text())
    digest = "0x" + hashlib.sha256(body).hexdigest()
    assert journaled["uri"] == uri and journaled["digest"] == digest and journaled["committed"] == digest
    assert digest[2:] not in uri and digest[2:] not in json.dumps(submitted[0]["args"])
    salt = bytes.fromhex(journaled["salt"][2:])
    assert onchain == journaled["commitment"] == "0x" + commitment(provider, job_id, bytes.fromhex(digest[2:]), salt).hex()
    assert stack.exec_record(ex, job_id)["commitment"] == journaled["commitment"]
    manifest = json.loads(stack.download(uri + ".json"))
    assert manifest["salt"] == journaled["salt"] and manifest["commitment"] == journaled["commitment"]
    # the withdraw beat moves the reward to the provider's wallet
    wait_for(lambda: stack.market.withdrawable(provider) == 0 and stack.market.token_balance(provider) >= wallet_before + TOKEN, 30, "withdrawal")
    assert stack.market.token_balance(provider) >= wallet_before + TOKEN


def test_a_job_posted_through_the_sdk_with_defaults_is_delivered_sealed_to_its_poster(stack: Stack, tmp_path: Path) -> None:
    """Client.post_job seals to the poster by default: the executor reads the key from the posted
    spec and publishes a ciphertext under its content address (no tar, the salt sealed), which the
    poster's client opens and checks against the commitment, and no other key opens; with
    seal=False the same job is published as a plaintext archive anyone can read."""
    stack.setup_funded(REQUESTER2)
    poster = dev_account(REQUESTER2, stack.deployment.chain_id)
    requester = Client.connect(stack.anvil.url, stack.deployment_file, poster)
    job_spec = spec(stack.images["busybox"], ["sh", "-c", "echo for my eyes only > /out/secret.txt"])
    terms = {"reward": TOKEN, "verify": "none", "challenge_window": 8, "collateral_pct": 400, "claim_window": 600}
    sealed = requester.post_job(job_spec, **terms)
    clear = requester.post_job(job_spec, seal=False, **terms)
    assert sealed.sealed_to == public_key_of(bytes(poster.key)) and clear.sealed_to is None
    for job_id in (sealed.job_id, clear.job_id):
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.FINALIZED), timeout=90)

    uri = stack.events(sealed.job_id, "ResultSubmitted")[0]["args"]["resultURI"]
    body = stack.download(uri)
    manifest = json.loads(stack.download(uri + ".json"))
    assert manifest["salt_sealed"] and "salt" not in manifest and manifest["encrypt_to"] == "0x" + sealed.sealed_to.hex()
    assert not tarfile.is_tarfile(io.BytesIO(body)) and b"for my eyes only" not in body
    assert uri.endswith("/" + hashlib.sha256(body).hexdigest())  # content-addressed
    stranger = Client.connect(stack.anvil.url, stack.deployment_file, Account.create())
    with pytest.raises(ResultSealed, match="not encrypted to this key"):
        stranger.download_result(sealed.job_id, tmp_path / "stranger")
    fetched = requester.download_result(sealed.job_id, tmp_path / "mine")
    assert fetched.sealed and (tmp_path / "mine" / "secret.txt").read_text() == "for my eyes only\n"

    plain_uri = stack.events(clear.job_id, "ResultSubmitted")[0]["args"]["resultURI"]
    assert tarfile.is_tarfile(io.BytesIO(stack.download(plain_uri)))
    public = stranger.download_result(clear.job_id, tmp_path / "public")
    assert not public.sealed and (tmp_path / "public" / "secret.txt").read_text() == "for my eyes only\n"


def test_jobs_posted_in_one_batch_are_claimed_in_one_transaction(stack: Stack) -> None:
    """Client.post_jobs posts three jobs in one postJobs transaction; the dispatcher reads their
    JobPosted entries together and claims them with one claimJobs transaction (one collateral
    lock), and each is run, submitted and finalized like a job claimed alone."""
    stack.setup_funded(REQUESTER2)
    requester = Client.connect(stack.anvil.url, stack.deployment_file, dev_account(REQUESTER2, stack.deployment.chain_id))
    specs = [spec(stack.images["busybox"], ["sh", "-c", f"echo batch {n} > /out/n.txt"]) for n in range(3)]
    terms = {"reward": TOKEN, "verify": "none", "challenge_window": 8, "collateral_pct": 400, "claim_window": 600}
    posted = requester.post_jobs(specs, **terms)
    ids = [p.job_id for p in posted]
    assert ids == list(range(ids[0], ids[0] + 3)) and len({p.tx_hash for p in posted}) == 1
    for job_id in ids:
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=120)
    claims = [stack.events(job_id, "JobClaimed") for job_id in ids]
    assert all(len(c) == 1 for c in claims), claims
    assert len({c[0]["tx"] for c in claims}) == 1, "the three claims went in one transaction"
    assert all(stack.job(job_id)["provider"] == stack.accounts[PROVIDER] for job_id in ids)


def _pool_from(stack: Stack, address: str) -> bool:
    pending = stack.market.rpc.call("txpool_content").get("pending", {})
    return any(key.lower() == address.lower() for key in pending)


@contextlib.contextmanager
def _mining_held(stack: Stack) -> Iterator[None]:
    """No block is mined but those the test mines (anvil_mine) until the block ends."""
    rpc = stack.market.rpc
    rpc.call("evm_setAutomine", [False])
    rpc.call("evm_setIntervalMining", [0])  # the stack's anvil also mines every second (--mixed-mining)
    try:
        yield
    finally:
        rpc.call("evm_setAutomine", [True])
        rpc.call("evm_setIntervalMining", [1])


def _post_batch_held(stack: Stack, requester: Client, specs: list, terms: dict) -> list[int]:
    """With mining held: `requester` posts `specs` in one postJobs, mined in one block; the job ids."""
    posted: list = []
    poster = threading.Thread(target=lambda: posted.extend(requester.post_jobs(specs, **terms)))
    poster.start()
    wait_for(lambda: _pool_from(stack, requester.address), 30, "the batch post in the pool")
    stack.market.rpc.call("anvil_mine", ["0x1"])
    poster.join(60)
    return [p.job_id for p in posted]


def test_results_ready_together_are_submitted_in_one_transaction(stack: Stack) -> None:
    """Mining is held once the three jobs of a batch are claimed: the first result's submission
    waits in the pool (the chain worker waits for its receipt) while the other runs finish and
    their submissions queue behind it. Once blocks are mined again, the next submit task takes every
    result still waiting along in one submitResults transaction; each job is then finalized and
    paid like one submitted alone."""
    rpc = stack.market.rpc
    stack.setup_funded(REQUESTER2)
    requester = Client.connect(stack.anvil.url, stack.deployment_file, dev_account(REQUESTER2, stack.deployment.chain_id))
    specs = [spec(stack.images["busybox"], ["sh", "-c", f"echo together {n} > /out/n.txt"]) for n in range(3)]
    terms = {"reward": TOKEN, "verify": "none", "challenge_window": 8, "collateral_pct": 400, "claim_window": 600}
    provider = stack.accounts[PROVIDER]
    with _mining_held(stack):
        ids = _post_batch_held(stack, requester, specs, terms)
        assert len(ids) == 3

        def claimed() -> bool:  # mines a block while the provider has a transaction waiting (the claim)
            if _pool_from(stack, provider):
                rpc.call("anvil_mine", ["0x1"])
            return all(stack.status(job_id) == JobStatus.CLAIMED for job_id in ids)

        wait_for(claimed, 60, "the three jobs claimed")
        # every run has recorded its outcome, and the first submission waits in the pool
        wait_for(lambda: all(stack.exec_record(stack.provider, j).get("state") == "outcome" for j in ids), 90, "three outcomes")
        wait_for(lambda: _pool_from(stack, provider), 60, "a submission in the pool")
    rpc.call("anvil_mine", ["0x1"])
    for job_id in ids:
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=120)
    txs = [stack.events(job_id, "ResultSubmitted")[0]["tx"] for job_id in ids]
    assert len(set(txs)) < 3, f"at least two results share a submitResults transaction: {txs}"
    batched = stack.provider.wait_log("worker-chain", lambda e: e.get("msg") == "submitted in one batch", "a batch submitted")
    together = [jobs for line in batched if (jobs := {int(j) for j in line["jobs"].split(",")}) & set(ids)]  # this test's
    assert together and all(len(jobs) >= 2 and jobs <= set(ids) for jobs in together), batched
    for job_id in ids:
        (finalized,) = stack.events(job_id, "JobFinalized")
        assert finalized["args"]["provider"].lower() == provider.lower() and int(finalized["args"]["payout"]) >= TOKEN


def _failure(stack: Stack, job_id: int) -> dict:
    events = stack.events(job_id, "FailureSubmitted")
    assert len(events) == 1, events
    return events[0]["args"]


def _claim_txs(stack: Stack, sender: str, first_block: int) -> list[tuple[str, list[int], bool]]:
    """Every claimJob / claimJobs transaction of `sender` in blocks `first_block`.. (hash, job ids,
    success), from the chain's blocks and receipts."""
    rpc = stack.market.rpc
    selectors = {"0x" + keccak(text="claimJob(uint256)")[:4].hex(): "uint256", "0x" + keccak(text="claimJobs(uint256[])")[:4].hex(): "uint256[]"}
    found = []
    for number in range(first_block, stack.market.block_number() + 1):
        for tx in rpc.call("eth_getBlockByNumber", [hex(number), True])["transactions"]:
            data = tx.get("input") or tx.get("data") or "0x"
            if tx["from"].lower() != sender.lower() or data[:10] not in selectors:
                continue
            (ids,) = abi_decode([selectors[data[:10]]], bytes.fromhex(data[10:]))
            ok = rpc.call("eth_getTransactionReceipt", [tx["hash"]])["status"] == "0x1"
            found.append((tx["hash"], [int(i) for i in ids] if isinstance(ids, (list, tuple)) else [int(ids)], ok))
    return found


def test_a_batch_claim_that_lost_one_job_claims_the_rest_in_one_more_batch(stack: Stack) -> None:
    """claimJobs is all or nothing. Mining is held while the executor's batch claim of four jobs
    waits in the pool; a competitor's claim of one of them (a higher tip) is mined first in the same
    block, so the batch reverts. The executor reads the jobs again and claims the three still Open
    in one more claimJobs (not one claimJob each): two claim transactions in all; the lost job is
    recorded lost, the three are claimed and run."""
    rpc = stack.market.rpc
    stack.setup_funded(REQUESTER2)
    stack.setup_provider(PROVIDER2)  # the competitor (no executor of its own)
    requester = Client.connect(stack.anvil.url, stack.deployment_file, dev_account(REQUESTER2, stack.deployment.chain_id))
    specs = [spec(stack.images["busybox"], ["sh", "-c", f"echo race {n} > /out/n.txt"]) for n in range(4)]
    terms = {"reward": TOKEN, "verify": "none", "challenge_window": 8, "collateral_pct": 400, "claim_window": 600}
    provider, competitor = stack.accounts[PROVIDER], stack.accounts[PROVIDER2]
    first_block = stack.market.block_number() + 1
    with _mining_held(stack):
        ids = _post_batch_held(stack, requester, specs, terms)
        assert len(ids) == 4
        wait_for(lambda: _pool_from(stack, provider), 60, "the executor's batch claim in the pool")
        pool = rpc.call("txpool_content")["pending"]
        (held,) = next(txs for sender, txs in pool.items() if sender.lower() == provider.lower()).values()
        (batch,) = abi_decode(["uint256[]"], bytes.fromhex(held["input"][10:]))
        assert sorted(batch) == ids, f"the executor's first claim was expected to be one claimJobs of the four jobs: {held['input'][:10]} {batch}"
        taken = ids[1]
        call = stack.market.contracts.job_market.claim_job(taken)
        gwei = 10**9
        rpc.call("eth_sendTransaction", [{"from": competitor, "to": call.to, "data": call.data, "gas": hex(300_000),
                                          "maxPriorityFeePerGas": hex(500 * gwei), "maxFeePerGas": hex(1_000 * gwei)}], retries=0)
        rpc.call("anvil_mine", ["0x1"])  # the competitor's claim first (its tip), then the executor's batch: reverted
        assert stack.job(taken)["provider"].lower() == competitor.lower()
        rest = [j for j in ids if j != taken]

        def claimed() -> bool:  # mines a block while the provider has a transaction waiting (its claims)
            if _pool_from(stack, provider):
                rpc.call("anvil_mine", ["0x1"])
            return all(stack.status(j) == JobStatus.CLAIMED and stack.job(j)["provider"].lower() == provider.lower() for j in rest)

        wait_for(claimed, 90, "the three other jobs claimed by the executor")
    claims = _claim_txs(stack, provider, first_block)
    assert [ok for _, _, ok in claims] == [False, True], f"one reverted batch, then one batch of the rest: {claims}"
    assert sorted(claims[1][1]) == rest, claims
    wait_for(lambda: stack.exec_record(stack.provider, taken).get("state") == "lost", 60, "the taken job recorded lost")
    for job_id in rest:
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=120)


def test_hostile_jobs_end_as_failures_and_the_worker_serves_the_next_job(stack: Stack) -> None:
    busybox = stack.images["busybox"]
    loop = stack.post(spec(busybox, ["sh", "-c", "while :; do :; done"], max_runtime=2))
    hog = stack.post(spec(busybox, ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"], memory_mb=16))
    nxt = stack.post(spec(busybox, ["sh", "-c", "echo still here > /out/ok"]))
    for job_id in (loop, hog, nxt):
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=60)
    assert int(_failure(stack, loop)["code"]) == FailureCode.TIME_LIMIT
    assert int(_failure(stack, hog)["code"]) == FailureCode.OUT_OF_MEMORY
    assert len(stack.events(nxt, "ResultSubmitted")) == 1
    assert not stack.events(nxt, "FailureSubmitted")
    # the hostile containers are gone
    instance = stack.provider.instance()
    names = [c.name for c in managed_containers(stack.engine, instance=instance)]  # one list request: others may go meanwhile
    assert not [n for n in names if n.endswith((f"-{loop}-{instance}", f"-{hog}-{instance}"))]


def test_a_job_that_tries_to_create_namespaces_fails_inside_and_the_provider_is_paid(stack: Stack, tmp_path: Path) -> None:
    """`unshare -Urn id -u` inside a posted job is refused by the seccomp profile: the job's own
    exit code (non-zero) is its result, the provider submits it and is paid, and nothing is slashed."""
    provider = stack.accounts[PROVIDER]
    before = stack.market.get_provider(provider)
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "unshare -Urn id -u > /out/uid 2> /out/err"]))
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=60)
    assert not stack.events(job_id, "FailureSubmitted")
    (submitted,) = stack.events(job_id, "ResultSubmitted")
    body = stack.download(submitted["args"]["resultURI"])
    salt = bytes.fromhex(json.loads(stack.download(submitted["args"]["resultURI"] + ".json"))["salt"][2:])
    assert "0x" + commitment(provider, job_id, hashlib.sha256(body).digest(), salt).hex() == submitted["args"]["commitment"].lower()
    archive = tmp_path / "r.tar"
    archive.write_bytes(body)
    assert read_exit_code(archive) != 0
    (finalized,) = stack.events(job_id, "JobFinalized")
    assert finalized["args"]["provider"].lower() == provider.lower()
    assert str(finalized["args"]["failure"]).lower() in ("false", "0")
    assert int(finalized["args"]["payout"]) >= TOKEN  # R + the kappa * fee rebate
    after = stack.market.get_provider(provider)
    assert after["staked"] == before["staked"] and after["jobsSlashed"] == before["jobsSlashed"]


def test_bad_specs_are_skipped_with_a_clear_reason_and_never_crash_a_worker(stack: Stack) -> None:
    import json

    from depin.spec import canonical_json

    busybox = stack.images["busybox"]
    repo, _digest = busybox.split("@")
    unknown_image = stack.post(spec("depin/nonexistent@sha256:" + "ab" * 32, ["true"]))
    wrong_digest = stack.post(spec(f"{repo}@sha256:" + "cd" * 32, ["true"]))
    malformed = stack.post(b'{"v": 1, "image": not json')
    bad_schema = stack.post(canonical_json({"v": 1, "image": "no-digest", "command": ["true"]}))
    too_big = stack.post(spec(busybox, ["true"], memory_mb=4096))
    too_long = stack.post(spec(busybox, ["true"], max_runtime=3600))
    # a runnable spec posted raw by a client that writes 1.0 where RFC 8785 writes 1
    canonical = spec(busybox, ["sh", "-c", "echo fine > /out/x"], cpus=1)
    non_canonical = stack.post(canonical.replace(b'"cpus":1,', b'"cpus":1.0,'))
    # a spec whose bytes do not hash to the recorded specHash (the contract refuses such a post, so
    # it is injected into the index, as a buggy or malicious indexer might serve it)
    fake = 10_000
    good_bytes = spec(busybox, ["true"])
    idx = stack.index()
    idx.hset(stack.keys.job(fake), mapping={"id": fake, "status": "Open", "specValid": "1", "specJson": good_bytes.decode(),
                                            "specHash": "0x" + "11" * 32, "reward": str(TOKEN), "maxRuntime": "60",
                                            "claimDeadline": str(2**31), "cpuSeconds": "10"})
    idx.xadd(stack.keys.events, {"kind": "event", "event": "JobPosted", "block": "0", "blockHash": "0x0", "tx": "0x0",
                                 "logIndex": "0", "args": json.dumps({"jobId": str(fake)})})
    good = stack.post(spec(busybox, ["sh", "-c", "echo fine > /out/x"]))
    stack.wait_status(good, JobStatus.FINALIZED, timeout=60)
    expected = {
        unknown_image: "not available locally",
        wrong_digest: "not available locally",
        malformed: "invalid spec",
        bad_schema: "invalid spec",
        too_big: "memory",
        too_long: "runs up to 3600",
        non_canonical: "not canonical JSON (RFC 8785",
        fake: "not the on-chain specHash",
    }
    provider = stack.provider
    for job_id, reason in expected.items():
        record = wait_for(lambda j=job_id: stack.exec_record(provider, j) or None, 10, f"record of job {job_id}")
        assert record["state"] == "skipped", (job_id, record)
        assert reason in record["reason"], (job_id, record["reason"])
        if job_id != fake:
            assert stack.status(job_id) == JobStatus.OPEN  # never claimed
    # each record is written before its log line
    wait_for(lambda: {int(e["job"]) for e in provider.log_lines("dispatcher") if e.get("msg") == "job skipped"} >= set(expected), 30,
             "a log line for each skipped job")
    for component in ("worker-compute", "worker-chain", "dispatcher"):
        assert provider.procs[component].alive(), provider.log(component)[-3000:]


def test_a_reorg_that_replaces_an_approved_job_is_judged_afresh(stack: Stack) -> None:
    """The dispatcher approved job N and queued its claim; a reorg replaces job N by another spec
    (too big for the policy) before the claim is sent: the claim task sees the changed spec hash,
    the dispatcher re-judges the canonical job and skips it; nothing is claimed."""
    from depin.spec import spec_hash

    m, provider = stack.market, stack.provider
    provider.stop("worker-chain")  # claims wait in the queue
    snap = m.snapshot()
    try:
        job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo approved > /out/x"]))
        wait_for(lambda: stack.exec_record(provider, job_id).get("state") == "claiming", 20, "the claim to be queued")
    finally:
        m.revert(snap)
    replacement = spec(stack.images["busybox"], ["true"], memory_mb=4096)
    assert stack.post(replacement) == job_id
    wait_for(lambda: stack.index().hget(stack.keys.job(job_id), "specHash") == "0x" + spec_hash(replacement).hex(), 20,
             "the indexer to follow the reorg")
    provider.start("worker-chain")
    record = wait_for(lambda: (r := stack.exec_record(provider, job_id)).get("state") == "skipped" and r, 30, "the job to be re-judged")
    assert "memory" in record["reason"]
    assert stack.status(job_id) == JobStatus.OPEN
    retracted = provider.wait_log("dispatcher", lambda e: e.get("msg") == "event retracted by a reorg" and e.get("job") == job_id, "the retraction")
    assert retracted


def test_depin_executor_start_runs_every_component_and_stops_cleanly_on_sigterm(stack: Stack) -> None:
    import os
    import signal
    import subprocess
    import sys

    provider = stack.provider
    provider.stop()  # the component-wise processes make way for the supervised ones
    depin = Path(sys.executable).with_name("depin")
    log = open(provider.workdir / "start.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([str(depin), "executor", "start", "--config", str(provider.config_path)], env=provider.env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        children = wait_for(lambda: len(c := _children(proc.pid)) == 5 and c, 30, "five components")
        job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo supervised > /out/x"]))
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=60)
        every = _descendants(proc.pid)
        assert len(every) >= 5 + 2  # the compute worker's two pool processes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
        wait_for(lambda: not [p for p in every if _alive(p)], 10, "every component to exit")
        assert set(children) <= set(every)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    out, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += _children(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
