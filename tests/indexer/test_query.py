"""The read side of the index (indexer/query.py) against a real redis-server.

The fixtures write Redis exactly as `depin/keys.py` documents the data model (the indexer's side of
the contract), so these tests pin down what the reader expects from the indexer. `test_api.py` and
`test_cli.py` import them from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from depin.keys import Keys
from depinctl.procs import free_port, start_redis  # noqa: F401 - free_port: test_api and test_cli import it from here
from indexer.query import IndexerReader, JobRecord, QueryError

CHAIN_ID = 31337
MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
STAKING = "0xa16E02E87b7454126E5E10d957A927A7F5B5d2be"
REQUESTER_A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REQUESTER_B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
PROVIDER_1 = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
PROVIDER_2 = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
TOKEN = 10**18
NOW = 1_800_000_000.0

# id -> (status, requester, provider, reward in tokens): the sample market.
SAMPLE_JOBS = {
    1: ("Finalized", REQUESTER_A, PROVIDER_1, 10),
    2: ("Open", REQUESTER_A, None, 2),
    3: ("Claimed", REQUESTER_B, PROVIDER_1, 3),
    4: ("Open", REQUESTER_B, None, 4),
    5: ("Disputed", REQUESTER_A, PROVIDER_2, 5),
}
SPEC = {"image": "docker.io/library/busybox@sha256:" + "ab" * 32, "cmd": ["echo", "hi"], "cpus": 1}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway redis-server on a free port, no persistence."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    with proc:
        yield url


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(CHAIN_ID, MARKET)


@pytest.fixture
def sample(r: redis.Redis, keys: Keys) -> Keys:
    """The sample market written into Redis; returns its Keys."""
    write_sample(r, keys)
    return keys


@pytest.fixture
def reader(r: redis.Redis, keys: Keys) -> IndexerReader:
    return IndexerReader(r, keys)


def write_job(r: redis.Redis, keys: Keys, job_id: int, status: str, requester: str, provider: str | None,
              reward: int, spec_valid: bool = True) -> None:
    """One job hash and its index entries, as depin/keys.py documents them (the indexer's side)."""
    spec_text = json.dumps(SPEC, sort_keys=True, separators=(",", ":"))
    posted, claimed = 10 + job_id, 20 + job_id
    history = [{"event": "JobPosted", "status": "Open", "block": posted, "tx": "0x" + "11" * 32, "logIndex": 0}]
    fields = {
        "id": str(job_id), "status": status, "requester": requester, "specHash": "0x" + f"{job_id:064x}",
        "reward": str(reward), "fromCredit": "0", "claimDeadline": "1800003600", "maxRuntime": "600",
        "challengeWindow": "120", "collateralPct": "10", "cpuSeconds": "600", "collateral": str(reward // 10),
        "deadline": "0", "spec": "0x" + spec_text.encode().hex(), "specValid": "1" if spec_valid else "0",
        "postedBlock": str(posted), "postedTx": "0x" + "11" * 32, "updatedBlock": str(posted),
    }
    if spec_valid:
        fields["specJson"] = spec_text
    else:
        fields["specError"] = "keccak256(spec) does not match specHash"
    if provider:
        history.append({"event": "JobClaimed", "status": "Claimed", "block": claimed, "tx": "0x" + "22" * 32,
                        "logIndex": 1})
        fields |= {"provider": provider, "providers": provider, "submitDeadline": "1800000600",
                   "deadline": "1800000600", "claimedBlock": str(claimed), "updatedBlock": str(claimed)}
    if status == "Finalized":
        fields |= {"failure": "0", "commitment": "0x" + "cd" * 32, "resultURI": "ipfs://result",
                   "payout": str(reward), "emission": "0"}
    fields["history"] = json.dumps(history)
    pipe = r.pipeline()
    pipe.hset(keys.job(job_id), mapping=fields)
    pipe.zadd(keys.jobs_all, {str(job_id): job_id})
    pipe.zadd(keys.jobs_by_status(status), {str(job_id): job_id})
    pipe.zadd(keys.jobs_by_requester(requester), {str(job_id): job_id})
    if provider:
        pipe.zadd(keys.jobs_by_provider(provider), {str(job_id): job_id})
    pipe.execute()


def write_provider(r: redis.Redis, keys: Keys, address: str, provider_id: int, staked: int, locked: int) -> None:
    r.hset(keys.provider(address), mapping={
        "address": address, "id": str(provider_id), "staked": str(staked), "locked": str(locked), "unbonding": "0",
        "releaseAt": "0", "jobsCompleted": "1", "jobsSlashed": "0", "endpoint": f"https://p{provider_id}.example",
        "capabilityHash": "0x" + "ee" * 32, "registeredBlock": "3",
    })
    r.zadd(keys.providers, {address: provider_id})


def write_sample(r: redis.Redis, keys: Keys, now: float = NOW) -> None:
    """Jobs 1..5 (SAMPLE_JOBS), two providers, totals, meta and cursor."""
    for job_id, (status, requester, provider, reward) in SAMPLE_JOBS.items():
        write_job(r, keys, job_id, status, requester, provider, reward * TOKEN, spec_valid=job_id != 5)
    write_provider(r, keys, PROVIDER_1, 1, 500 * TOKEN, TOKEN // 10 * 3)
    write_provider(r, keys, PROVIDER_2, 2, 200 * TOKEN, TOKEN // 10 * 5)
    r.hset(keys.totals, mapping={
        "jobs": "5", "Open": "2", "Claimed": "1", "Finalized": "1", "Disputed": "1",
        "escrowed": str(14 * TOKEN), "pendingBurn": str(TOKEN // 2), "withdrawable": str(10 * TOKEN),
        "paid": str(10 * TOKEN), "refunded": "0", "emitted": "0", "slashed": "0", "burned": str(TOKEN // 2),
        "flushed": "0", "toCourt": "0",
        "deposited": "0", "withdrawn": "0", "providers": "2", "staked": str(700 * TOKEN),
        "locked": str(TOKEN // 10 * 8), "unbonding": "0",
    })
    r.hset(keys.meta, mapping={
        "chainId": str(CHAIN_ID), "market": MARKET, "staking": STAKING, "deployBlock": "1", "confirmations": "0",
        "finalityDepth": "64", "head": "120", "eventsApplied": "42", "eventsPerSecond": "1234.5",
        "updatedAt": str(now - 3),
    })
    r.set(keys.cursor, json.dumps({"number": 118, "hash": "0x" + "ab" * 32}))


def write_deployment_file(path: Path) -> Path:
    """A deployment file (depin/deployment.py format) for the sample market."""
    path.write_text(json.dumps({
        "addresses": {"ArbiterResolver": STAKING, "JobMarket": MARKET, "ProviderStaking": STAKING,
                      "RewardToken": STAKING},
        "chainId": CHAIN_ID, "deployBlock": 1, "deployer": REQUESTER_A, "network": "devnet", "parameters": {},
    }, indent=2, sort_keys=True) + "\n")
    return path


# ------------------------------------------------------------------------------------------ tests


def ids(jobs: list[JobRecord]) -> list[int]:
    return [j.id for j in jobs]


def test_list_jobs_is_newest_first_by_default_and_pages(reader: IndexerReader, sample: Keys) -> None:
    """All jobs, by id, newest first; limit/offset page through them and `total` counts all pages."""
    assert ids(reader.list_jobs()) == [5, 4, 3, 2, 1]
    assert ids(reader.list_jobs(newest_first=False)) == [1, 2, 3, 4, 5]
    page = reader.job_page(limit=2, offset=2)
    assert (page.total, ids(page.jobs)) == (5, [3, 2])
    assert ids(reader.list_jobs(limit=2, offset=4)) == [1]
    assert reader.list_jobs(offset=10) == []


def test_filters_combine_and_accept_any_case(reader: IndexerReader, sample: Keys) -> None:
    """status (any case, separators ignored), requester and provider filters intersect."""
    assert ids(reader.list_jobs(status="open")) == [4, 2]
    assert ids(reader.list_jobs(status="OPEN", newest_first=False)) == [2, 4]
    assert ids(reader.list_jobs(requester=REQUESTER_A)) == [5, 2, 1]
    assert ids(reader.list_jobs(requester=REQUESTER_A.lower())) == [5, 2, 1]
    assert ids(reader.list_jobs(provider=PROVIDER_1)) == [3, 1]
    assert ids(reader.list_jobs(status="open", requester=REQUESTER_A)) == [2]
    page = reader.job_page(requester=REQUESTER_A, provider=PROVIDER_1, limit=1)
    assert (page.total, ids(page.jobs)) == (1, [1])
    assert reader.list_jobs(status="timed-out") == []


def test_get_job_parses_every_field(reader: IndexerReader, sample: Keys) -> None:
    """A job hash becomes typed fields; the rest are kept verbatim in `extra`."""
    job = reader.get_job(1)
    assert job is not None
    assert (job.status, job.requester, job.provider) == ("Finalized", REQUESTER_A, PROVIDER_1)
    assert (job.reward, job.collateral) == (10 * TOKEN, TOKEN)
    assert job.spec_valid is True and job.spec == SPEC
    assert [h["event"] for h in job.history] == ["JobPosted", "JobClaimed"]
    assert job.providers == [PROVIDER_1]
    assert job.extra["resultURI"] == "ipfs://result" and job.extra["claimDeadline"] == "1800003600"
    assert "status" not in job.extra and "history" not in job.extra and "id" not in job.extra
    open_job = reader.get_job("2")
    assert open_job is not None and open_job.provider is None  # the zero address means "none yet"
    invalid = reader.get_job(5)
    assert invalid is not None and (invalid.spec_valid, invalid.spec) == (False, None)
    assert invalid.extra["specError"] and invalid.extra["spec"].startswith("0x")


def test_json_amounts_are_strings(reader: IndexerReader, sample: Keys) -> None:
    """Amounts beyond 2^53 survive JSON as decimal strings; fields are camelCase."""
    dumped = json.loads(reader.get_job(1).model_dump_json(by_alias=True))
    assert dumped["reward"] == str(10 * TOKEN) and dumped["specValid"] is True
    assert json.loads(reader.totals().model_dump_json(by_alias=True))["escrowed"] == str(14 * TOKEN)


def test_unknown_ids_are_none(reader: IndexerReader, sample: Keys) -> None:
    assert reader.get_job(99) is None
    assert reader.get_provider(REQUESTER_B) is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda rd: rd.list_jobs(status="bogus"), "unknown job status 'bogus'"),
        (lambda rd: rd.list_jobs(requester="0x1234"), "malformed address '0x1234'"),
        (lambda rd: rd.list_jobs(provider="0x90f79bf6eb2c4f870365e785982e1f101e93B906"), "malformed address"),
        (lambda rd: rd.list_jobs(limit=0), "limit must be from 1"),
        (lambda rd: rd.list_jobs(offset=-1), "offset must be 0 or more"),
        (lambda rd: rd.get_job(-1), "malformed job id -1"),
        (lambda rd: rd.get_job("seven"), "malformed job id 'seven'"),
        (lambda rd: rd.get_provider("nope"), "malformed address 'nope'"),
    ],
)
def test_bad_input_raises_one_line_query_error(reader: IndexerReader, call, message: str) -> None:
    """Bad input raises QueryError (an IndexerError and a ValueError) with a one-line message."""
    from depin.errors import DepinError

    with pytest.raises(QueryError, match=message) as info:
        call(reader)
    assert isinstance(info.value, DepinError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_providers(reader: IndexerReader, sample: Keys) -> None:
    """Providers come in provider-id order; lookups take any address case."""
    providers = reader.list_providers()
    assert [(p.address, p.id) for p in providers] == [(PROVIDER_1, 1), (PROVIDER_2, 2)]
    p1 = reader.get_provider(PROVIDER_1.lower())
    assert p1 == providers[0]
    assert (p1.staked, p1.locked, p1.jobs_completed, p1.endpoint) == (500 * TOKEN, 3 * TOKEN // 10, 1,
                                                                       "https://p1.example")


def test_totals_count_statuses_from_the_indexes(reader: IndexerReader, sample: Keys) -> None:
    totals = reader.totals()
    assert totals.jobs == 5 and (totals.escrowed, totals.paid) == (14 * TOKEN, 10 * TOKEN)
    assert (totals.pending_burn, totals.providers, totals.staked) == (TOKEN // 2, 2, 700 * TOKEN)
    assert totals.by_status["Open"] == 2 and totals.by_status["Disputed"] == 1 and totals.by_status["Expired"] == 0
    assert totals.extra == {}


def test_status_lag_and_age(reader: IndexerReader, sample: Keys) -> None:
    """Lag is head - cursor; the head is the node's when given, else the indexer's last seen."""
    st = reader.status(now=NOW)
    assert (st.indexed, st.head, st.head_source, st.cursor, st.lag) == (True, 120, "indexer", 118, 2)
    assert (st.events_applied, st.events_per_second, st.seconds_since_update) == (42, 1234.5, 3.0)
    assert (st.chain_id, st.market, st.finality_depth) == (CHAIN_ID, MARKET, 64)
    st = reader.status(chain_head=130, now=NOW)
    assert (st.head, st.head_source, st.lag) == (130, "rpc", 12)


def test_empty_index(reader: IndexerReader) -> None:
    """Before the indexer ran: no jobs, zero totals, status says not indexed."""
    assert reader.list_jobs() == [] and reader.list_providers() == []
    assert reader.totals().jobs == 0
    st = reader.status()
    assert (st.indexed, st.head, st.cursor, st.lag) == (False, None, None, None)


def test_a_page_is_read_as_of_one_cursor(r: redis.Redis, reader: IndexerReader, sample: Keys) -> None:
    """When the indexer commits (moves the cursor) between reading an index and its hashes, the
    read starts over, so a page never mixes two indexer states."""
    calls = []

    def read(client: redis.Redis) -> tuple[list[int], list[dict]]:
        calls.append(1)
        found = [int(m) for m in client.zrevrange(sample.jobs_all, 0, -1)]
        if len(calls) == 1:  # an indexer batch lands right now: job 6 appears, the cursor moves
            write_job(r, sample, 6, "Open", REQUESTER_B, None, TOKEN)
            r.set(sample.cursor, json.dumps({"number": 119, "hash": "0x" + "ac" * 32}))
        pipe = client.pipeline(transaction=False)
        for job_id in found:
            pipe.hgetall(sample.job(job_id))
        return found, pipe.execute()

    found, hashes = reader._consistently(read)
    assert len(calls) == 2 and found == [6, 5, 4, 3, 2, 1] and all(hashes)


def test_for_deployment(redis_url: str, sample: Keys, tmp_path: Path) -> None:
    """The deployment file names the chain and market, hence the key prefix."""
    rd = IndexerReader.for_deployment(redis_url, write_deployment_file(tmp_path / "31337.json"))
    assert rd.keys.prefix == sample.prefix and ids(rd.list_jobs(status="claimed")) == [3]
    with pytest.raises(FileNotFoundError, match="deployment file .*missing.json not found"):
        IndexerReader.for_deployment(redis_url, tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(QueryError, match="is not a deployment file"):
        IndexerReader.for_deployment(redis_url, tmp_path / "bad.json")


def test_the_executors_reads_job_fields_and_claims(reader: IndexerReader, sample: Keys, r: redis.Redis) -> None:
    """What the executor reads from the index goes through the reader: a job's raw fields, some
    fields of many jobs in one round trip, and the jobs a provider holds Claimed now."""
    assert reader.job_fields(3)["status"] == "Claimed" and reader.job_fields(3)["provider"] == PROVIDER_1
    assert reader.job_fields(99) == {}
    assert reader.jobs_fields([3, 2, 99], ["status", "provider"]) == [
        {"status": "Claimed", "provider": PROVIDER_1}, {"status": "Open"}, {},
    ]
    assert reader.claimed_by(PROVIDER_1.lower()) == {3}  # job 1 (Finalized) is in PROVIDER_1's index too
    assert reader.claimed_by(PROVIDER_2) == set()  # job 5 is Disputed
    # a job PROVIDER_1 timed out on and PROVIDER_2 claimed stays in PROVIDER_1's provider index
    write_job(r, sample, 6, "Claimed", REQUESTER_A, PROVIDER_2, 1)
    r.zadd(sample.jobs_by_provider(PROVIDER_1), {"6": 6})
    assert reader.claimed_by(PROVIDER_1) == {3}
    assert reader.claimed_by(PROVIDER_2) == {6}
