"""Plain HTTP downloads (not JSON-RPC): fetch a URL's bytes while hashing them, with a size cap.

:func:`download_and_hash` is the one way the SDK and the CLI fetch a result archive or an input
URL: ``http``/``https`` are streamed with httpx (redirects followed, a connect/read timeout), ``file``
URIs are read from disk. The bytes go to `dest` (a binary file) when one is given, else only their
sha256 is computed. Every failure is a :class:`FetchError` whose message names the URL.

Nothing is ever decompressed: every request (every redirect hop too) asks for the content as is
(``Accept-Encoding: identity``), a 200 answer with any ``Content-Encoding`` but ``identity`` is
refused unread, and the body is read raw, so the size cap counts the bytes as sent (a few hundred
compressed bytes could otherwise decode to gigabytes in one read).

A caller that expects a file (an archive, a data set) passes ``refuse_html``: a 200 answer that is an
HTML page (``Content-Type`` text/html or application/xhtml+xml, or no type and a body that starts
as one) is then refused with :class:`FetchGotHtml`, whose message says so (status, content type,
where redirects led, the page's first bytes): a sign-in page, a captive portal or a proxy's error
page otherwise passes as the file and is hashed (found by review, stop 41). Text of any other type
(CSV, JSON, plain text) passes.

A caller fetching a URL that somebody else wrote (a verifier fetching a provider's result) passes a
`resolver`: every hop's host (the URL's, then each redirect's, at most ``MAX_REDIRECTS``, http(s)
only) is resolved by it, which refuses an address it must not reach with :class:`FetchRefused`,
and the connection goes to the address it returned (the Host header and the TLS name stay the
URL's), so a name cannot resolve to one address when checked and another when connected. No proxy
is then taken from the environment. ``depin.addresses.public_resolver`` is such a resolver.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx

from depin.errors import DepinError
from depin.watchdog import SocketWatchdog

DEFAULT_TIMEOUT = 60.0
CHUNK = 1 << 20
MAX_REDIRECTS = 5  # followed with a resolver (httpx's own limit, 20, without one)
IDENTITY = {"Accept-Encoding": "identity"}  # the content as is: nothing is decompressed (the module doc)
# What httpx may raise for a server's answer besides an httpx.HTTPError: a redirect's Location it
# cannot parse (httpx.InvalidURL for ``http:b``, idna.IDNAError, a UnicodeError, for ``http://xn--/``:
# httpx parses it to build the next request even when it does not follow it), and any other parse
# error of what came back. Caught where a fetch ends (here and in executor.inputs): a server's bytes
# make a failed fetch, never an exception that escapes the fetcher (found by review). OverflowError:
# a port of 2**63 or more in a URL or a redirect's Location, which the socket layer cannot take.
UNREADABLE_ANSWER_ERRORS: tuple[type[Exception], ...] = (httpx.InvalidURL, httpx.StreamError, UnicodeError, ValueError, OverflowError)
T = TypeVar("T")
Resolver = Callable[[str, int], str]
"""A host and port to the one address to connect to; raises :class:`FetchRefused` (or
:class:`FetchError`) for a host that must not be reached or cannot be resolved."""


class FetchError(DepinError):
    """The URL could not be downloaded (the message says why)."""


class FetchTooLarge(FetchError):
    """The content exceeds the caller's size cap; the download stopped there."""


class FetchGotHtml(FetchError):
    """The server answered an HTML page where a file was expected (``refuse_html``)."""


class FetchRefused(FetchError):
    """The URL (or a redirect) leads where the caller's resolver does not connect: nothing was
    sent there."""


@dataclass(frozen=True)
class Fetched:
    """What a download produced: the sha256 of the bytes and how many there were."""

    digest: bytes
    size: int


def download_and_hash(
    uri: str,
    dest: BinaryIO | None = None,
    *,
    max_bytes: int,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    schemes: tuple[str, ...] = ("http", "https", "file"),
    resolver: Resolver | None = None,
    refuse_html: bool = False,
) -> Fetched:
    """Streams the content at `uri` into `dest` (None: hash only), stopping past `max_bytes`;
    returns its sha256 and size. `timeout` bounds each connect and each read; `deadline` (a
    ``time.monotonic()`` instant) the whole download, checked at every read, so a server that
    trickles a byte per read timeout cannot hold it for ever. `schemes`: the URI schemes taken.
    `resolver`: where http(s) connections may go (the module doc; None: wherever the URL and its
    redirects lead). `refuse_html`: an HTML page is not the file (the module doc). Raises :class:`FetchTooLarge` past the cap, :class:`FetchRefused` when the
    resolver refuses a hop, and :class:`FetchError` for anything else (an HTTP status other than
    200, a compressed answer, a scheme not taken, the deadline, a connection or file error)."""
    try:
        scheme = urllib.parse.urlsplit(uri).scheme.lower()
    except ValueError:  # e.g. an unbalanced '[' in the host part
        raise FetchError(f"cannot download {uri[:200]!r}: not a URI") from None
    if scheme in ("http", "https") and scheme in schemes:
        chunks = (_http_chunks(uri, timeout, deadline, refuse_html) if resolver is None
                  else _pinned_chunks(uri, timeout, resolver, deadline, refuse_html))
        return _hash_chunks(uri, chunks, dest, max_bytes, deadline)
    if scheme == "file" and scheme in schemes:
        return _hash_chunks(uri, _file_chunks(uri), dest, max_bytes, deadline)
    raise FetchError(f"cannot download {uri[:200]!r}: unsupported URI scheme ({', '.join(schemes)})")


class Watchdog(SocketWatchdog):
    """Shuts down, at `deadline` (``time.monotonic()``; None: never), every connection a request
    made under it, so that the request ends then whatever the server does. A deadline checked
    between body chunks cannot stop a server that sends its response head one byte per read
    timeout (httpcore takes up to 100 KiB of head): found by review, stop 36, holding a provider's
    input fetch past its deadline. Pass :attr:`extensions` with the request (httpcore's ``trace``
    hook names each TCP connection as it is made, and its TLS socket once the handshake is done:
    the TLS wrapping detaches the TCP socket object, whose shutdown then does nothing, which held an
    HTTPS input fetch past its deadline, found in stop 40); :attr:`fired` tells whether the deadline
    did. The mechanism is :class:`depin.watchdog.SocketWatchdog`'s (JSON-RPC calls use it too)."""

    @property
    def extensions(self) -> dict[str, Any]:
        return {"trace": self._trace}

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            self.watch(stream.get_extra_info("socket") if stream is not None else None)


def _check_watchdog(uri: str, watchdog: Watchdog) -> None:
    """A body the watchdog cut short can look complete (no Content-Length: the close ends it): it
    is too late, never a short answer of the server's."""
    if watchdog.fired:
        raise FetchError(f"downloading {uri} took too long (stopped at the deadline)")


def _hash_chunks(uri: str, chunks: Generator[bytes], dest: BinaryIO | None, max_bytes: int, deadline: float | None) -> Fetched:
    h = hashlib.sha256()
    size = 0
    with closing(chunks):  # stopping early closes the connection or file now
        for chunk in chunks:
            if deadline is not None and time.monotonic() > deadline:
                raise FetchError(f"downloading {uri} took too long ({size} bytes by the deadline)")
            size += len(chunk)
            if size > max_bytes:
                raise FetchTooLarge(f"{uri} exceeds {max_bytes} bytes; refusing it")
            h.update(chunk)
            if dest is not None:
                dest.write(chunk)
    return Fetched(h.digest(), size)


def _http_chunks(uri: str, timeout: float, deadline: float | None = None, refuse_html: bool = False) -> Generator[bytes]:
    _http_url(uri, uri)  # read strictly first (a port out of range), as the pinned fetch does
    watchdog = Watchdog(deadline)
    try:
        with (
            watchdog,
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", uri, headers=IDENTITY, extensions=watchdog.extensions) as response,
        ):
            _check_answer(uri, response)
            yield from _body(uri, response, str(response.url), refuse_html)  # as the bytes arrive: the deadline is checked per read
            _check_watchdog(uri, watchdog)
    except httpx.HTTPError as exc:
        if watchdog.fired:
            raise FetchError(f"downloading {uri} took too long (stopped at the deadline)") from None
        raise FetchError(f"downloading {uri} failed: {exc or type(exc).__name__}") from None
    except UNREADABLE_ANSWER_ERRORS as exc:
        raise _unreadable(uri, exc, watchdog) from None


def _unreadable(uri: str, exc: Exception, watchdog: Watchdog) -> FetchError:
    if watchdog.fired:
        return FetchError(f"downloading {uri} took too long (stopped at the deadline)")
    return FetchError(f"downloading {uri} failed: the answer or a redirect could not be read ({type(exc).__name__}: {str(exc)[:200]})")


class Redirected(Exception):
    """Raised by :func:`stop_at_redirect` to carry a redirect's Location out of httpx unparsed."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def stop_at_redirect(response: httpx.Response) -> None:
    """A response hook for a client that follows redirects by hand: httpx parses a redirect's
    Location (to build the request it would follow) even with ``follow_redirects=False``, and a
    malformed one raises there (:data:`UNREADABLE_ANSWER_ERRORS`). The hook runs before that: the
    Location leaves unparsed, for :func:`_http_url` to judge."""
    if response.has_redirect_location:
        raise Redirected(response.headers["location"])


def _check_answer(uri: str, response: httpx.Response) -> None:
    """Refuses, before any of the body is read, an answer other than 200 or one whose body is
    encoded (compressed): only the content as is is taken (the module doc)."""
    if response.status_code != 200:
        raise FetchError(f"downloading {uri} failed: HTTP {response.status_code}")
    if response.headers.get("content-encoding", "").strip().lower() not in ("", "identity"):
        raise FetchError(
            f"downloading {uri} failed: the server sent a compressed (Content-Encoding) answer, which is not accepted "
            "(the content must be served as is)"
        )


HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTML_STARTS = (b"<!doctype html", b"<html")


def _body(uri: str, response: httpx.Response, final_url: str, refuse_html: bool) -> Generator[bytes]:
    """The raw body of an accepted answer; with `refuse_html`, :class:`FetchGotHtml` for an HTML page
    (judged by its type, or by its first bytes when it has none)."""
    raw = response.iter_raw()
    if refuse_html:
        first = next(raw, b"")
        content_type = response.headers.get("content-type", "").strip()
        media = content_type.split(";")[0].strip().lower()
        if media in HTML_TYPES or (not media and first.lstrip().lower().startswith(_HTML_STARTS)):
            raise FetchGotHtml(_html_message(uri, response.status_code, content_type, final_url, first))
        if first:
            yield first
    yield from raw


def _html_message(uri: str, status: int, content_type: str, final_url: str, first: bytes) -> str:
    start = "".join(c if c.isprintable() else " " for c in first[:400].decode("utf-8", "replace"))
    start = " ".join(start.split())[:100]
    where = "" if final_url == uri else f", after redirects to {final_url[:200]}"
    kind = "".join(c if c.isprintable() else "?" for c in content_type[:100]) or "none"
    return (f"downloading {uri} failed: the server answered an HTML page, not the file (HTTP {status}, Content-Type "
            f"{kind}{where}; the page starts {start!r}): a sign-in page, a captive portal or an error page? Open the URL "
            "in a browser to see it")


def parse_url(text: str, base: httpx.URL | None = None) -> httpx.URL:
    """`text` as a URL, or a redirect's Location read against the URL `base` that sent it, strictly:
    an absolute-form Location without a host (``http:b``) is malformed, not a path (httpx refuses
    it too when it follows redirects), and so is a host that is no valid IDNA name (``xn--``, which
    httpx keeps in the URL and fails on only when it reads the host). Raises httpx.InvalidURL or a
    ValueError (``idna.IDNAError`` is a UnicodeError) for a malformed one, and for a port outside
    1-65535: httpx takes any number of digits, and the socket layer then raised OverflowError (from
    2**63) or quietly connected to the port modulo 65536 (found by review, stop 55)."""
    url = httpx.URL(text)
    if base is not None:
        if url.scheme and not url.raw_host:
            raise httpx.InvalidURL("an absolute URL without a host")
        url = base.join(url)
    _ = url.host  # decodes an IDNA ("xn--") host: raises for a malformed one
    if url.port is not None and not 1 <= url.port <= 65535:
        raise httpx.InvalidURL(f"port {str(url.port)[:20]} is out of range")
    return url


def _http_url(uri: str, text: str, base: httpx.URL | None = None) -> httpx.URL:
    """`text` (a redirect's Location when `base` is given) as an absolute http(s) URL with a host."""
    what = "a redirect" if base is not None else "it"
    try:
        url = parse_url(text, base)
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise FetchRefused(f"downloading {uri} failed: {what} is not a valid http(s) URL") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise FetchRefused(f"downloading {uri} failed: {what} leads to a URL that is not http(s) with a host")
    return url


def _pinned_chunks(
    uri: str, timeout: float, resolver: Resolver, deadline: float | None = None, refuse_html: bool = False
) -> Generator[bytes]:
    """GETs `uri`, following redirects by hand: each hop connects only to the address `resolver`
    gave for its host (the module doc). Every connection is shut down at `deadline` (:class:`Watchdog`)."""
    url = _http_url(uri, uri)
    watchdog = Watchdog(deadline)
    try:
        with watchdog, httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, event_hooks={"response": [stop_at_redirect]}
        ) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                host = url.raw_host.decode("ascii")
                port = url.port or (443 if url.scheme == "https" else 80)
                address = by_deadline(partial(resolver, host, port), deadline, f"downloading {uri} took too long (resolving {host})")
                pinned = url.copy_with(host=address)
                headers = {"Host": url.netloc.decode("ascii"), **IDENTITY}
                try:
                    with client.stream("GET", pinned, headers=headers, extensions={"sni_hostname": host, **watchdog.extensions}) as response:
                        _check_answer(uri, response)
                        yield from _body(uri, response, str(url), refuse_html)  # as the bytes arrive: the deadline is checked per read
                        _check_watchdog(uri, watchdog)
                        return
                except Redirected as redirect:
                    url = _http_url(uri, redirect.location, base=url)
    except httpx.HTTPError as exc:
        if watchdog.fired:
            raise FetchError(f"downloading {uri} took too long (stopped at the deadline)") from None
        raise FetchError(f"downloading {uri} failed: {exc or type(exc).__name__}") from None
    except UNREADABLE_ANSWER_ERRORS as exc:
        raise _unreadable(uri, exc, watchdog) from None
    raise FetchError(f"downloading {uri} failed: more than {MAX_REDIRECTS} redirects")


class LookupTimedOut(FetchError):
    """A name lookup did not end by the fetch's deadline (:func:`by_deadline`)."""


def by_deadline(lookup: Callable[[], T], deadline: float | None, what: str) -> T:
    """`lookup()`'s result (or its exception), or :class:`LookupTimedOut` at `deadline` (a
    ``time.monotonic()`` instant; None: no bound). For name lookups: one that asks the system
    (``getaddrinfo``) waits for a name server as long as the system's resolver settings say, once
    per redirect hop, and a requester's name server that never answers held a provider's input
    fetch past its deadline (noticed in stop 39). The lookup runs in a daemon thread, left to end on
    its own when the deadline comes first (one per fetch at most: no later hop is looked up)."""
    if deadline is None:
        return lookup()
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, lookup()))
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting thread, which raises it
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="depin-lookup", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise LookupTimedOut(f"{what} did not end by the deadline")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def open_regular_file(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file at `path`, opened without blocking and without
    following a final symbolic link; OSError otherwise (``ELOOP`` for a link, ``EINVAL`` for a path
    with a NUL in it or a file that is not regular). A FIFO, a terminal or another device
    (``/dev/zero``, ``/dev/tty``) would block the open or never end, past any deadline (a deadline
    is checked between reads only)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except ValueError:  # "embedded null byte"
        raise OSError(errno.EINVAL, "not a file path (it has a NUL in it)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _file_chunks(uri: str) -> Generator[bytes]:
    """The bytes of a ``file://`` URI's regular file (:func:`open_regular_file`)."""
    try:
        source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))
        fd = open_regular_file(source)
    except ValueError:  # urlsplit: an unbalanced '[' in the host part
        raise FetchError(f"downloading {uri[:200]!r} failed: not a file URI") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FetchError(f"downloading {uri} failed: it names a symbolic link (not followed)") from None
        raise FetchError(f"downloading {uri} failed: {exc}") from None
    try:
        with os.fdopen(fd, "rb", closefd=False) as src:
            while chunk := src.read(CHUNK):
                yield chunk
    except OSError as exc:
        raise FetchError(f"downloading {uri} failed: {exc}") from None
    finally:
        os.close(fd)
