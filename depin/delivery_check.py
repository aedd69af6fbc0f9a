"""Whether a provider delivered the result it committed to: what a drawn auditor or juror checks
before it commits (VERIFICATION.md §4, "delivery is enforced"; VERIFICATION-ANALYSIS F7).

A provider commits on chain to ``C = keccak256(abi.encode(provider, jobId, digest, salt))`` and
names a result URI. Re-running the job shows whether ``digest`` is right, not whether anybody can
get the archive: a provider could commit to the right digest and never publish it. So a verifier
whose own re-run yields a result also fetches what the provider published (:func:`check_delivered`):

- **plaintext** delivery (the spec names no ``delivery.encrypt_to``): the archive at the URI and
  its manifest beside it (``<uri>.json``, with the ``salt``). The archive's digest (its sha256, or
  the match digest of the spec's ``output.match``) with that salt must give the provider's
  commitment: what the requester's ``depin job result`` checks, without extracting anything;
- **sealed** delivery (the spec names the requester's key; :mod:`depin.delivery`): the sealed bytes
  must hash to the content address the URI and the manifest (``sha256``) name, and the manifest must
  be a sealed one (``salt_sealed``) naming the spec's key (``encrypt_to``). The verifier cannot open
  it: it checks that these bytes were served, not that the plaintext inside matches the commitment
  (only the requester can tell that).

Anything else (no URI, the archive or the manifest missing or unreachable, bytes over the size cap,
a mismatch, a delivery of the other kind than the spec asks for) is *not delivered*, and the
verifier commits :data:`depin.commitment.NOT_DELIVERED` instead of its re-run digest. The checker's
own machine failing while it checks (its disk or temporary folder full, out of descriptors, an I/O
error: :data:`depin.outputs.PROVIDER_ERRNOS`) is *not checked* (``not-checked``), never a verdict
against the provider: the verifier then commits its re-run digest (it was "not delivered" before
the review of stop 55, a vote against an honest provider whenever a verifier's /tmp filled up). Missing or
unreachable content is asked for again every `retry_every` seconds until `wait` seconds have passed
(a provider's server restarting is not a withheld result); a mismatch is final.

Pure over HTTP (:mod:`depin.fetch`: bounded size, timeouts); no chain access: the caller passes the
URI and the commitment (the provider's ``ResultSubmitted``). The URI is the provider's, so it is
fetched through a `resolver` (default: :func:`depin.addresses.public_resolver`, public addresses
only; a verifier adds its ``[verifier] result_allow_networks``): a URI, or a redirect, that leads
to the checker's own network (loopback, the LAN, a metadata service) is not fetched at all and
the result is *not delivered* (``no-uri``), as it is for anyone outside that network.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from depin.addresses import public_resolver
from depin.commitment import commitment as commitment_of
from depin.delivery import DeliveryError, check_content_address, parse_public_key
from depin.deployment import json_nesting_exceeds
from depin.fetch import Fetched, FetchError, FetchRefused, FetchTooLarge, Resolver, download_and_hash
from depin.outputs import PROVIDER_ERRNOS, UnsafeArchive, match_digest

MANIFEST_MAX_BYTES = 65_536
MANIFEST_MAX_DEPTH = 8  # a manifest is one flat object
DEFAULT_TIMEOUT = 30.0
# why a delivery failed; the first two are asked for again within the caller's wait
UNAVAILABLE, NO_MANIFEST, MISMATCH, TOO_LARGE, NO_URI, WRONG_KIND = (
    "unavailable", "no-manifest", "mismatch", "too-large", "no-uri", "wrong-kind",
)
NOT_CHECKED = "not-checked"  # the checker's own machine failed: no verdict on the provider
RETRIED = (UNAVAILABLE, NO_MANIFEST)
HTTP = ("http", "https")  # what a delivery is fetched over


@dataclass(frozen=True)
class DeliveryVerdict:
    """The outcome of :func:`check_delivered`: ``delivered`` (true also as the verdict's truth
    value), and when not, ``failure`` (one of the module's kinds) and ``reason`` (one line)."""

    delivered: bool
    uri: str
    sealed: bool
    reason: str = ""
    failure: str = ""
    size: int = 0  # bytes of the archive as served
    attempts: int = 1

    def __bool__(self) -> bool:
        return self.delivered

    def summary(self) -> str:
        """One line for a record or a log: ``delivered (sealed, 10240 bytes)`` or ``not delivered:
        <reason>``."""
        if self.delivered:
            return f"delivered ({'sealed' if self.sealed else 'plaintext'}, {self.size} bytes)"
        if self.failure == NOT_CHECKED:
            return f"not checked: {self.reason}"
        return f"not delivered: {self.reason}"


def machine_failed(uri: str, sealed: bool, exc: BaseException) -> DeliveryVerdict | None:
    """The *not checked* verdict when `exc` is this machine failing (an OSError whose errno is one of
    :data:`depin.outputs.PROVIDER_ERRNOS`), else None."""
    if isinstance(exc, OSError) and exc.errno in PROVIDER_ERRNOS:
        return DeliveryVerdict(False, uri, sealed, reason=f"this machine failed while checking: {str(exc)[:200]}", failure=NOT_CHECKED)
    return None


# one download of the check: (uri, dest or None, max_bytes) -> what came
_Get = Callable[[str, BinaryIO | None, int], Fetched]


def fetch_manifest(
    uri: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    resolver: Resolver | None = None,
    schemes: tuple[str, ...] = ("http", "https", "file"),
) -> dict[str, Any]:
    """The manifest published beside a result (``<uri>.json``, at most 64 KiB of JSON object),
    downloaded as :func:`depin.fetch.download_and_hash` does with these arguments.
    :class:`~depin.fetch.FetchError` when it cannot be downloaded (:class:`~depin.fetch.FetchRefused`
    when `resolver` refuses where it leads), ValueError when it is not a JSON object."""
    return _manifest(uri, partial(_download, timeout=timeout, deadline=deadline, resolver=resolver, schemes=schemes))


def _download(
    uri: str,
    dest: BinaryIO | None,
    max_bytes: int,
    *,
    timeout: float,
    deadline: float | None,
    resolver: Resolver | None,
    schemes: tuple[str, ...] = HTTP,
) -> Fetched:
    return download_and_hash(uri, dest, max_bytes=max_bytes, timeout=timeout, deadline=deadline, schemes=schemes, resolver=resolver)


def _manifest(uri: str, get: _Get) -> dict[str, Any]:
    buffer = io.BytesIO()
    get(uri + ".json", buffer, MANIFEST_MAX_BYTES)
    text = buffer.getvalue().decode("utf-8")
    if json_nesting_exceeds(text, MANIFEST_MAX_DEPTH):  # json's scanner would recurse per level
        raise ValueError(f"the manifest is nested deeper than {MANIFEST_MAX_DEPTH} levels")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("the manifest is not a JSON object")  # noqa: TRY004 - bad content from a server, not a caller's type error
    return value


def check_delivered(
    uri: str,
    *,
    provider: str,
    job_id: int,
    commitment: bytes,
    match: Sequence[str] | None,
    encrypt_to: bytes | str | None,
    max_bytes: int,
    timeout: float = DEFAULT_TIMEOUT,
    wait: float = 0.0,
    retry_every: float = 1.0,
    total_timeout: float | None = None,
    resolver: Resolver | None = None,
) -> DeliveryVerdict:
    """Whether the result at `uri` is what `provider` committed to for `job_id` (see the module doc).
    `match` and `encrypt_to` are the spec's ``output.match`` and ``delivery.encrypt_to`` (None: the
    whole archive, a plaintext delivery). Missing or unreachable content is asked for again until
    `wait` seconds have passed. `timeout` bounds each connect and read; `total_timeout` (None: no
    bound) the whole check, attempts included: a server that trickles its bytes is not delivering.
    In process that bound has two holes (a response head trickled a byte per read timeout, and
    ``tarfile``'s pax parsing on old Pythons): a checker with a deadline of its own, a juror, runs
    :func:`executor.verifier.check_delivered_bounded`.
    Only http(s) URIs are fetched (a ``file://`` URI would read the checker's own disk), each hop
    through `resolver` (None: public addresses only; the module doc). Never raises for what the
    server does; ValueError for bad arguments."""
    if len(commitment) != 32:
        raise ValueError("the commitment must be 32 bytes")
    key = parse_public_key(encrypt_to) if encrypt_to is not None else None
    started = time.monotonic()
    deadline = started + max(0.0, wait)
    stop = None if total_timeout is None else started + total_timeout
    get = partial(_download, timeout=timeout, deadline=stop, resolver=resolver or public_resolver())
    attempts = 0
    while True:
        attempts += 1
        verdict = _check_once(uri, provider, int(job_id), bytes(commitment), match, key, max_bytes, get)
        late = stop is not None and time.monotonic() + retry_every > stop
        if verdict.delivered or verdict.failure not in RETRIED or time.monotonic() + retry_every > deadline or late:
            return replace(verdict, attempts=attempts)
        time.sleep(retry_every)  # a bounded wait for a server that may be restarting


def _check_once(
    uri: str,
    provider: str,
    job_id: int,
    commitment: bytes,
    match: Sequence[str] | None,
    key: bytes | None,
    max_bytes: int,
    get: _Get,
) -> DeliveryVerdict:
    sealed = key is not None

    def no(failure: str, reason: str, size: int = 0) -> DeliveryVerdict:
        return DeliveryVerdict(False, uri, sealed, reason[:300], failure, size)

    if not uri:
        return no(NO_URI, "the provider named no result URI")
    if urllib.parse.urlsplit(uri).scheme.lower() not in HTTP:
        return no(NO_URI, f"the result URI {uri[:80]!r} is not an http(s) URL that anyone can fetch")
    try:
        manifest = _manifest(uri, get)
    except FetchRefused as exc:
        return no(NO_URI, f"the result URI leads where this checker does not fetch from: {exc}")
    except FetchError as exc:
        return no(NO_MANIFEST, f"no manifest: {exc}")
    except ValueError as exc:
        return no(MISMATCH, f"the manifest at {uri}.json is unreadable: {exc}")
    if bool(manifest.get("salt_sealed")) != sealed:
        asked = "sealed to the requester" if sealed else "in plaintext"
        return no(WRONG_KIND, f"the spec asks for a delivery {asked}; the manifest at {uri}.json is of the other kind")
    try:
        return _check_archive(uri, manifest, get, no, provider=provider, job_id=job_id, commitment=commitment, match=match,
                              sealed=sealed, key=key, max_bytes=max_bytes)
    except OSError as exc:  # this machine's own failure (the archive's folder full): not the provider's doing
        verdict = machine_failed(uri, sealed, exc)
        if verdict is None:
            raise
        return verdict


def _check_archive(
    uri: str, manifest: dict[str, Any], get: _Get, no: Callable[..., DeliveryVerdict], *, provider: str, job_id: int,
    commitment: bytes, match: Sequence[str] | None, sealed: bool, key: bytes | None, max_bytes: int,
) -> DeliveryVerdict:
    """The archive's part of :func:`check_delivered`, once the manifest is read."""
    with tempfile.TemporaryDirectory(prefix="depin-delivery-") as tmp:
        archive = Path(tmp) / "archive"
        keep = not sealed and bool(match)  # the match digest needs the archive; else hashing is enough
        try:
            if keep:
                with open(archive, "wb") as out:
                    fetched = get(uri, out, max_bytes)
            else:
                fetched = get(uri, None, max_bytes)
        except FetchRefused as exc:
            return no(NO_URI, f"the result URI leads where this checker does not fetch from: {exc}")
        except FetchTooLarge:
            return no(TOO_LARGE, f"the archive at {uri} exceeds {max_bytes} bytes")
        except FetchError as exc:
            return no(UNAVAILABLE, str(exc))
        if sealed:
            assert key is not None
            try:
                check_content_address(fetched.digest, uri, str(manifest.get("sha256", "")))
                named = parse_public_key(str(manifest.get("encrypt_to", "")))
            except DeliveryError as exc:
                return no(MISMATCH, str(exc), fetched.size)
            if named != key:
                return no(MISMATCH, "the manifest names another recipient than the spec's delivery.encrypt_to", fetched.size)
            return DeliveryVerdict(True, uri, sealed, size=fetched.size)
        try:
            salt = bytes.fromhex(str(manifest.get("salt", "")).removeprefix("0x"))
        except ValueError:
            salt = b""
        if len(salt) != 32:
            return no(MISMATCH, f"the manifest at {uri}.json has no 32-byte salt", fetched.size)
        try:
            digest = match_digest(archive, list(match)) if match else fetched.digest
        except (UnsafeArchive, ValueError, OSError, tarfile.TarError) as exc:
            if machine_failed(uri, sealed, exc) is not None:
                raise  # reading our own copy failed (EIO): not the archive's doing
            return no(MISMATCH, f"the archive at {uri} is not a result archive: {exc}", fetched.size)
        if commitment_of(provider, job_id, digest, salt) != commitment:
            return no(MISMATCH, f"the archive at {uri} (digest 0x{digest.hex()}) with its manifest's salt does not give the provider's commitment", fetched.size)
        return DeliveryVerdict(True, uri, sealed, size=fetched.size)



def _main() -> None:
    """The child of :func:`executor.verifier.check_delivered_bounded`: a request (JSON) on stdin,
    the verdict (JSON) on stdout."""
    from dataclasses import asdict  # lazy: start-up

    from depin.addresses import parse_networks  # lazy: start-up

    r = json.loads(sys.stdin.read())
    if r.get("max_memory"):
        _limit_memory(int(r["max_memory"]))
    try:
        verdict = check_delivered(
            r["uri"], provider=r["provider"], job_id=r["job_id"], commitment=bytes.fromhex(r["commitment"]), match=r["match"],
            encrypt_to=r["encrypt_to"],  # hex: parse_public_key takes it
            max_bytes=r["max_bytes"], timeout=r["timeout"], wait=r["wait"], total_timeout=r["total_timeout"],
            resolver=public_resolver(parse_networks(r["allow_networks"])),
        )
    except Exception as exc:  # noqa: BLE001 - what the check did not expect: a stopped check, "not delivered" (its caller's doc)
        traceback.print_exc()
        reason = f"the check stopped on an unexpected error: {type(exc).__name__}: {exc}"
        verdict = machine_failed(r["uri"], r["encrypt_to"] is not None, exc) or DeliveryVerdict(
            False, r["uri"], r["encrypt_to"] is not None, reason=reason[:300], failure=UNAVAILABLE
        )
    sys.stdout.write(json.dumps(asdict(verdict)))


def _limit_memory(limit: int) -> None:
    """Caps this process's address space at `limit` bytes (RLIMIT_AS, soft and hard: never raised
    again), where the platform has the limit; an allocation past it fails (MemoryError)."""
    import resource  # lazy: start-up; POSIX only

    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (AttributeError, ValueError, OSError):  # a platform without it: the check runs unlimited, as before
        pass


if __name__ == "__main__":
    _main()
