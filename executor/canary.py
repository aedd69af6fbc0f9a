"""The canary role (issue 12; VERIFICATION.md §1 step 5): jobs whose answer is garbage on purpose,
to catch verifiers that do not run what they audit.

``depin executor start --role canary`` (devnet and operators). The executor's account is a
registered provider (it claims the canary jobs: collateral at stake). The jobs are posted, and
exposed, by ``[canary.requester]``'s account, and each exposure is signed by ``[canary.signer]``,
a key holding the court's ``CANARY_ROLE`` that sends nothing; without those sections the executor's
own account does all three (the devnet does), and a canary is then told apart on chain by its
requester being its provider and holding the role. With them, nothing on chain tells a canary job
from another until it is exposed.
Plain functions over a :class:`~executor.runtime.Runtime`; the beat's ``depin.canary`` runs
:func:`run_pass` every few seconds.

- **Post** every ``[canary] interval`` seconds (at most ``max_open`` in flight) one realistic,
  re-executable job as requester (``[canary] image``, ``command``, ``reward``; a fresh ``SEED`` in
  its environment so that no two specs are alike), through the SDK.
- **Claim** it as provider in the next block (as fast as a provider that sees the post in its index:
  any later and a provider takes the canary first; a job that a reorg gave another requester is
  never claimed), and, after
  what a run of its spec could take (a random 1 s to its runtime), **commit garbage**: a 32-byte secret and a fresh salt are written
  to the canary journal (``<state_dir>/canary/<job>.json``, fsync'd) BEFORE the submission; the
  commitment covers ``canary_digest(secret)`` = keccak("depin-canary", secret)
  (:func:`depin.commitment.canary_digest`). The secret is HMAC-SHA256 of the job id under the
  operator's **bait key** (``<state_dir>/canary/bait.key``, made once), so the bait below exists
  for every job id, canary or not. The job is never run. What the URI serves is a
  **decoy** (:func:`publish_decoy`): a random output sealed to the job's delivery key under its
  content address, so a juror's delivery check passes as for any honest provider's archive.
- **Offer the bait**: ``GET /canary/<jobId>`` on ``[canary] bind`` answers a fake digest's hex to
  anyone who asks, for *every* job id (:func:`serve`): what a lazy verifier copies instead of
  running the job. For a canary it is the committed digest; for any other job the same derivation
  gives a digest no honest run matches. The answer is the same before and after a canary is
  committed, so asking cannot tell canaries from other jobs (the operator is trusted only not to
  say which jobs are canaries: VERIFICATION.md §1.5).
- **Reveal** the fake digest as the provider once the court's reveal phase is open (a provider that
  does not reveal loses), and **expose** the canary (``exposeCanary(jobId, secret, salt,
  authorization)``, sent by the requester with the signer's
  :func:`depin.accounts.sign_canary_authorization`) as soon as
  the audit round is tallied (the canary window of an agreeing audit) or the case went on to a
  jury: every seat that revealed the fake digest loses σR of its stake.
- An undrawn canary job is finalized like any job (``finalizeMany``, as a provider's beat does),
  and its anchor block hash recorded like a provider's (it is listed among the submitted jobs that
  :func:`executor.beat.record_anchors` looks at). The record says what was caught:
  ``{e}:canary:{job}`` (a hash): ``state`` (posted → claimed → submitted → revealed → exposed |
  finalized | done), ``digest`` (the bait), ``caught`` (seats slashed), ``slashed`` (wei),
  ``verifiers`` (the caught addresses, comma-separated), the transactions. ``depin executor
  status`` lists them (:func:`summary`).

Crash safety: each step reads the chain (the job's status, the court's case) before it acts; the
secret and salt are on disk before the commitment is sent and are reused by a retried submission.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from depin.accounts import account_from_config, sign_canary_authorization
from depin.client import Client
from depin.commitment import canary_digest, commitment, new_salt
from depin.contracts import VerificationCourt
from depin.delivery import seal_bytes
from depin.deployment import to_wei
from depin.errors import DepinError
from depin.market import JobStatus
from depin.outputs import build_archive
from depin.spec import canonical_json, parse_spec
from depin.transactions import Receipt, TxReverted
from executor.execution import same
from executor.results import create_durably, create_or_load, sealed_manifest
from executor.runtime import Runtime

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

log = logging.getLogger("executor.canary")

PHASE_NONE, PHASE_ACTIVE, PHASE_TALLIED, PHASE_ARBITER, PHASE_CONCLUDED = range(5)
IN_FLIGHT = ("posted", "claimed", "submitted", "revealed")


@dataclass(frozen=True)
class CanaryEntry:
    """A canary job's secret: what proves, later, that its commitment was garbage."""

    job_id: int
    provider: str
    secret: str
    salt: str
    digest: str  # canary_digest(secret)
    commitment: str  # commitment(provider, job, digest, salt)

    def expose_args(self) -> tuple[int, bytes, bytes]:
        return self.job_id, bytes.fromhex(self.secret[2:]), bytes.fromhex(self.salt[2:])


class CanaryJournal:
    """One durable file per canary job below `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load(self, job_id: int) -> CanaryEntry | None:
        try:
            return CanaryEntry(**json.loads((self.root / f"{int(job_id)}.json").read_bytes()))
        except FileNotFoundError:
            return None

    def bait_key(self) -> bytes:
        """The operator's 32-byte bait key (``bait.key``, mode 0600): made once, durably, and never
        replaced (two processes making it at once agree: the first link wins)."""
        path = self.root / "bait.key"
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        create_durably(path, secrets.token_bytes(32).hex().encode(), mode=0o600)
        return bytes.fromhex(path.read_text().strip())

    def secret_for(self, job_id: int) -> bytes:
        """Job `job_id`'s canary secret: HMAC-SHA256 of its id under :meth:`bait_key` (revealed on
        chain by exposeCanary; it says nothing of the key or of any other job's secret)."""
        return hmac.new(self.bait_key(), b"depin-canary-secret:%d" % int(job_id), hashlib.sha256).digest()

    def bait(self, job_id: int) -> str:
        """The fake digest offered for job `job_id` (``0x``-hex): ``canary_digest`` of its secret."""
        return "0x" + canary_digest(self.secret_for(job_id)).hex()

    def record(self, provider: str, job_id: int) -> CanaryEntry:
        """The job's entry: the existing one, else its secret (:meth:`secret_for`) and a fresh salt
        written durably and exclusively: a second writer gets the first one's entry back, never
        replaces the salt its commitment was made with (review, stop 56)."""
        existing = self.load(job_id)
        if existing is not None:
            return existing
        secret, salt = self.secret_for(job_id), new_salt()
        digest = canary_digest(secret)
        entry = CanaryEntry(
            job_id=int(job_id), provider=provider, secret="0x" + secret.hex(), salt="0x" + salt.hex(), digest="0x" + digest.hex(),
            commitment="0x" + commitment(provider, int(job_id), digest, salt).hex(),
        )
        data = json.dumps(asdict(entry), sort_keys=True).encode()
        return create_or_load(self.root / f"{int(job_id)}.json", data, entry, lambda: self.load(job_id))


def journal(rt: Runtime) -> CanaryJournal:
    return CanaryJournal(rt.state_dir / "canary")


def record(rt: Runtime, job_id: int) -> dict[str, str]:
    return rt.state.hgetall(rt.xkeys.canary(job_id))  # type: ignore[return-value]


def set_record(rt: Runtime, job_id: int, state: str | None = None, **fields: Any) -> None:
    values = {k: ("" if v is None else str(v)) for k, v in fields.items()}
    values.update(job=str(job_id), updated=f"{time.time():.3f}")
    pipe = rt.state.pipeline(transaction=True)
    if state is not None:
        values["state"] = state
        if state in IN_FLIGHT:
            pipe.zadd(rt.xkeys.canaries, {str(job_id): time.time()}, nx=True)
        else:
            pipe.zrem(rt.xkeys.canaries, str(job_id))
            pipe.zrem(rt.xkeys.submitted, str(job_id))
    pipe.hset(rt.xkeys.canary(job_id), mapping=values)
    pipe.execute()


def in_flight(rt: Runtime) -> list[int]:
    return [int(j) for j in rt.state.zrange(rt.xkeys.canaries, 0, -1)]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------- pass


def run_pass(rt: Runtime) -> int:
    """Posts a canary job when one is due, then moves every canary job in flight one step on; the
    number of transactions sent."""
    sent = post_if_due(rt)
    for job_id in in_flight(rt):
        try:
            sent += step(rt, job_id)
        except TxReverted as exc:
            log.info("canary step not taken", extra={"job": job_id, "error": exc.error_name})
    return sent


def canary_spec(rt: Runtime) -> bytes:
    c = rt.config.canary
    if not c.image:
        raise ValueError("[canary] image is not set: the canary role needs an image reference (repo@sha256:...)")
    return canonical_json({
        "v": 1, "image": c.image, "command": list(c.command), "env": {"SEED": secrets.token_hex(8)}, "inputs": [],
        "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10, "output_mb": 1},
    })


def post_if_due(rt: Runtime) -> int:
    """Posts one canary job when ``interval`` seconds passed since the last and fewer than
    ``max_open`` are in flight."""
    c = rt.config.canary
    last = float(rt.state.get(rt.xkeys.canary_posted) or 0)  # type: ignore[arg-type]
    if time.time() - last < c.interval or len(in_flight(rt)) >= c.max_open:
        return 0
    rt.state.set(rt.xkeys.canary_posted, f"{time.time():.3f}")
    # the SDK's defaults: sealed to the canary's own key like any job posted through the SDK, so a
    # canary's spec does not stand out by a missing delivery field
    posted = requester(rt).post_job(canary_spec(rt), reward=to_wei(c.reward), verify="reexec")
    set_record(rt, posted.job_id, "posted", post_tx=posted.tx_hash)
    log.info("canary job posted", extra={"job": posted.job_id, "tx": posted.tx_hash})
    # claimed by the next step of this pass, in the next block: as fast as a provider that sees the
    # post in its index, and no later, or a provider takes the canary first (every one, on the devnet)
    return 1


def step(rt: Runtime, job_id: int) -> int:
    """One canary job's next step (see the module doc)."""
    rec = record(rt, job_id)
    state = rec.get("state")
    job = rt.job(job_id)
    client = rt.client
    if state == "posted":
        if not same(job.requester, requester(rt).address):
            # a reorg gave our post another id: this one is somebody else's job, never ours to claim
            set_record(rt, job_id, "done", reason=f"job {job_id} was posted by {job.requester}, not by the canary")
            return 0
        if job.status == JobStatus.OPEN:
            receipt = client.claim(job_id, still_needed=claim_wanted(rt, job_id))
            set_record(rt, job_id, "claimed", claim_tx=receipt.tx_hash, submit_after=_submit_after(rt, job_id))
            job = rt.job(job_id)
        elif job.status == JobStatus.CLAIMED and same(job.provider, rt.address):
            set_record(rt, job_id, "claimed", submit_after=_submit_after(rt, job_id))  # claimed before a crash
        else:
            set_record(rt, job_id, "done", reason=f"job is {job.status.label}")
            return 0
        state = "claimed"
    if state == "claimed":
        if not same(job.requester, requester(rt).address):
            # a reorg gave the id to somebody else's job: never commit garbage to it
            set_record(rt, job_id, "done", reason=f"job {job_id} was posted by {job.requester}, not by the canary")
            log.error("canary job id taken by another job after a reorg", extra={"job": job_id, "status": job.status.label})
            return 0
        if job.status == JobStatus.CLAIMED and same(job.provider, rt.address):
            after = record(rt, job_id).get("submit_after")
            if not after:  # a record written before the delay existed: give it one now
                set_record(rt, job_id, submit_after=_submit_after(rt, job_id))
                return 0
            if time.time() < float(after):
                return 0
            entry = journal(rt).record(rt.address, job_id)  # durable before the commitment is sent
            uri = publish_decoy(rt, job_id, entry)
            receipt = client.submit_result(job_id, bytes.fromhex(entry.commitment[2:]), uri)
            set_record(rt, job_id, "submitted", digest=entry.digest, submit_tx=receipt.tx_hash)
            _watch_anchor(rt, job_id)
            log.info("canary committed", extra={"job": job_id, "tx": receipt.tx_hash})
            return 2
        if same(job.provider, rt.address) and job.status in (JobStatus.SUBMITTED, JobStatus.DISPUTED):
            set_record(rt, job_id, "submitted", digest=journal(rt).load(job_id).digest)  # type: ignore[union-attr]
            _watch_anchor(rt, job_id)
        else:
            set_record(rt, job_id, "done", reason=f"job is {job.status.label}")
        return 0
    if job.status not in (JobStatus.SUBMITTED, JobStatus.DISPUTED):
        set_record(rt, job_id, "finalized" if job.status == JobStatus.FINALIZED else "done", chain_status=job.status.label)
        return 0
    found = journal(rt).load(job_id)
    if found is None:
        log.error("canary job without a journal entry", extra={"job": job_id})
        set_record(rt, job_id, "done", reason="no journal entry")
        return 0
    entry = found
    case = client.court_case(job_id)
    phase = int(case["phase"])
    court = client.court_of(job_id)
    if phase == PHASE_NONE:
        if job.status == JobStatus.SUBMITTED and rt.chain_now() > job.deadline and client.is_drawn(job_id) is False:
            receipt = client.finalize_many([job_id])  # as a provider's beat finalizes (finalize() would stand out)
            set_record(rt, job_id, "finalized", finalize_tx=receipt.tx_hash, caught=0)
            return 1
        return 0
    if phase == PHASE_CONCLUDED:
        set_record(rt, job_id, "done", outcome=str(case["outcome"]))
        return 0
    if phase == PHASE_ACTIVE and int(case["round"]) == 0:
        if int(case["committed"]) > 0 and not case["providerRevealed"]:
            try:
                receipt = client.send(court.reveal_provider(job_id, bytes.fromhex(entry.digest[2:]), bytes.fromhex(entry.salt[2:])))
            except TxReverted as exc:
                if exc.error_name in ("RevealNotOpen", "AlreadyRevealed"):
                    return 0
                raise
            set_record(rt, job_id, "revealed", reveal_tx=receipt.tx_hash)
            return 1
        if not (case["providerRevealed"] and int(case["revealed"]) >= int(case["taken"]) > 0):
            return 0
        # every seat revealed: tally now (advance), then expose in the canary window
        try:
            client.send(court.advance(job_id))
        except TxReverted:
            return 0
        return 1
    key = signer(rt)
    if not client.read(court.has_role(client.read(court.canary_role()), key.address)):
        log.error("the canary signer does not hold CANARY_ROLE: nothing exposed", extra={"job": job_id, "signer": key.address})
        return 0
    authorization = sign_canary_authorization(key, rt.chain_id, court.address, job_id)
    receipt = requester(rt).send(court.expose_canary(*entry.expose_args(), authorization))
    caught, slashed, who = exposure(receipt, court)
    set_record(rt, job_id, "exposed", expose_tx=receipt.tx_hash, caught=caught, slashed=slashed, verifiers=",".join(who))
    log.warning("canary exposed", extra={"job": job_id, "caught": caught, "slashed": str(slashed), "verifiers": ",".join(who)})
    return 1


def claim_wanted(rt: Runtime, job_id: int) -> Callable[[], bool]:
    """The signer's ``still_needed`` check of a canary's ``claimJob(job_id)``, asked before a
    dropped or reorged-out claim is sent again: the claim names the job by id only, and after a
    reorg the id may hold somebody else's job (which the canary would then commit garbage to). It is
    wanted while the job is Open, posted by the canary's requester, and the record still says
    posted or claimed."""

    def check() -> bool:
        job = rt.job(job_id)
        if job.status == JobStatus.OPEN and same(job.requester, requester(rt).address) and record(rt, job_id).get("state") in ("posted", "claimed"):
            return True
        log.warning("reorged-out canary claim not sent again", extra={"job": job_id, "status": job.status.label, "requester": job.requester})
        return False

    return check


_accounts: dict[tuple[str, str], Any] = {}  # (instance, role) -> the unlocked account (or client), per process


def requester(rt: Runtime) -> Client:
    """The client that posts the canary jobs and exposes them: ``[canary.requester]``'s account,
    else the executor's own (:attr:`Runtime.client`)."""
    key = rt.config.canary.requester
    if key is None:
        return rt.client
    found = _accounts.get((rt.instance, "requester"))
    if found is None:
        found = _accounts[(rt.instance, "requester")] = rt.client.with_account(account_from_config(key, rt.chain_id))
    return found


def signer(rt: Runtime) -> LocalAccount:
    """The CANARY_ROLE key that signs each exposure (it sends no transaction): ``[canary.signer]``,
    else the executor's own ``[key]``."""
    found = _accounts.get((rt.instance, "signer"))
    if found is None:
        found = _accounts[(rt.instance, "signer")] = account_from_config(rt.config.canary.signer or rt.config.key, rt.chain_id)
    return found


def _submit_after(rt: Runtime, job_id: int) -> str:
    """When to commit a claimed canary: after what a run of its spec could take (a random 1 s to its
    runtime), not in the next block (a provider that commits at once runs nothing, and the chain
    would say so)."""
    return f"{time.time() + secrets.SystemRandom().uniform(1.0, float(max(1, spec_runtime(rt, job_id)))):.3f}"


def _watch_anchor(rt: Runtime, job_id: int) -> None:
    """Lists the submitted canary among the executor's submitted jobs, so that its anchor block hash
    is recorded like a provider's (:func:`executor.beat.record_anchors`, run by the canary pass):
    an unrecorded hash that expires makes the job count as drawn, which a provider's would not."""
    rt.state.zadd(rt.xkeys.submitted, {str(job_id): rt.job(job_id).deadline})


def spec_runtime(rt: Runtime, job_id: int) -> int:
    """The canary job's spec runtime (seconds; 10 when its spec cannot be read)."""
    try:
        return parse_spec(rt.client.spec_bytes(job_id)).resources.max_runtime
    except (DepinError, ValueError):
        return 10


def publish_decoy(rt: Runtime, job_id: int, entry: CanaryEntry) -> str:
    """Publishes what an honest provider would for the canary job, and returns its URI: an archive
    sealed to the job's ``delivery.encrypt_to`` (the canary's own key: it posted the job) under its
    content address, with the usual sealed manifest (the salt sealed to the same key). Inside is
    the archive of an output like the job's, with random content: only the recipient could open
    it, and nothing in it is checked against the garbage commitment. A juror's delivery check
    (:func:`depin.delivery_check.check_delivered`: content address, recipient) therefore passes,
    so a canary job does not give itself away by a missing archive. A job posted in the clear
    (no ``delivery``) gets an unserved random name, as no plaintext archive can match garbage."""
    base = f"{rt.config.executor.results_url.rstrip('/')}/results/"
    try:
        recipient = parse_spec(rt.client.spec_bytes(job_id)).encrypt_to
    except (DepinError, ValueError) as exc:
        log.warning("canary spec unreadable; decoy not published", extra={"job": job_id, "error": str(exc)[:200]})
        recipient = None
    if recipient is None:
        return base + secrets.token_hex(16)
    store = rt.store
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".decoy-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        (out / "result").write_text(secrets.token_hex(secrets.randbelow(24) + 4) + "\n")
        archive = Path(tmp) / "result.tar"
        build_archive(out, 0, archive)
        stored = store.put(archive, move=True, encrypt_to=recipient)
    salt_sealed = "0x" + seal_bytes(recipient, bytes.fromhex(entry.salt[2:])).hex()
    store.put_manifest(stored.name, sealed_manifest(job_id, rt.address, entry.commitment, stored.name, recipient.hex(), salt_sealed))
    return stored.uri


def exposure(receipt: Receipt, court: VerificationCourt) -> tuple[int, int, list[str]]:
    """(seats caught, wei slashed, the caught verifiers) from ``exposeCanary``'s events."""
    exposed, slashed_topic = court.TOPICS["CanaryExposed"], court.TOPICS["VerifierSlashed"]
    caught, slashed, who = 0, 0, []
    for entry in receipt.logs:
        if entry["address"].lower() != court.address.lower():
            continue
        topic = entry["topics"][0]
        data = bytes.fromhex(entry["data"][2:])
        if topic == exposed:
            caught, slashed = int.from_bytes(data[32:64], "big"), int.from_bytes(data[64:96], "big")
        elif topic == slashed_topic:
            who.append("0x" + entry["topics"][1][-40:])
    return caught, slashed, who


# ---------------------------------------------------------------------------------------- status


def summary(rt: Runtime, limit: int = 50) -> list[dict[str, str]]:
    """The canary records, newest first (for ``depin executor status``)."""
    rows: list[dict[str, str]] = [rt.state.hgetall(k) for k in rt.state.scan_iter(match=rt.xkeys.canary_pattern, count=500)]  # type: ignore[misc]
    rows.sort(key=lambda r: float(r.get("updated") or 0), reverse=True)
    return rows[:limit]


# ---------------------------------------------------------------------------------------- bait


_PATH = re.compile(r"^/canary/(\d{1,20})/?\Z")


def serve(state: redis.Redis, keys: Any, host: str, port: int, journal: CanaryJournal) -> None:
    """``GET /canary/<jobId>`` -> a fake digest (hex, ``0x``-prefixed, text/plain) for every job id:
    a canary's committed one (its record's, else :meth:`CanaryJournal.bait`), and for any other job
    :meth:`CanaryJournal.bait` too, so the answer never says which jobs are canaries. 404 only for a
    path that is not ``/canary/<digits>``. Runs until killed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            m = _PATH.match(self.path)
            if self.path == "/healthz":
                self._send(200, "ok")
                return
            if not m:
                self._send(404, "not found")
                return
            job_id = int(m.group(1))
            self._send(200, str(state.hget(keys.canary(job_id), "digest") or journal.bait(job_id)))

        def _send(self, code: int, text: str) -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("bait request", extra={"request": self.requestline[:200], "client": self.client_address[0]})

    server = ThreadingHTTPServer((host, port), Handler)
    log.info("canary bait server listening", extra={"bind": f"{host}:{port}"})
    server.serve_forever()
