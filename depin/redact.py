"""URLs as they may be shown: in logs, error messages and on the terminal.

A node or Redis URL can carry a credential: a password in its user info
(``https://user:s3cret@node/``, ``redis://:s3cret@db/0``), an API key as a path segment (hosted
nodes: ``https://node.example/v3/<key>``, ``https://eth.example/v2/<key>``) or a
query parameter (``?apikey=...``, Redis's ``?password=...``). :func:`redact_url` shows the URL with
the password as ``***``, a path segment that looks like a key (:data:`KEY_SEGMENT`) cut to its first
four characters and ``***``, and the value of a query parameter named like a secret
(:data:`SECRET_PARAMS`) as ``***``; everything else (scheme, user name, host, port, the rest of the
path and query) stays, so the message still says which node. :func:`redact_text` does the same to a
URL's secrets inside some other text (an exception's message that quotes the URL).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

MASK = "***"
# A path segment this long and of these characters is taken for an API key (no real RPC path has one).
KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]{16,}$")
SECRET_PARAMS = re.compile(r"key|token|secret|pass|auth|sig|credential", re.IGNORECASE)
KEEP = 4  # leading characters of a key shown, to tell keys apart


def redact_url(url: str) -> str:
    """`url` without its password, API keys or secret query values (see the module doc)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL (an unclosed IPv6 bracket): shown as written, what looks secret masked
        return _redact_unparsable(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]  # may be empty: a socket path or the default host
        netloc = f"{parts.username or ''}:{MASK}@{host}"
    path = "/".join(_short(s) if KEY_SEGMENT.match(s) else s for s in parts.path.split("/"))
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(SECRET_PARAMS.search(k) for k, _ in pairs):
        query = urlencode([(k, MASK if SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    head = f"{parts.scheme}:" if parts.scheme else ""
    if netloc or url[len(head) :].startswith("//"):  # urlunsplit would drop an empty one (unix:///run/redis.sock)
        head += f"//{netloc}"
    return head + path + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


_USERINFO_PASSWORD = re.compile(r"(//[^/?#@]*?:)[^/?#@]*@")
_KEY_IN_PATH = re.compile(r"(?<=/)[A-Za-z0-9_\-]{16,}(?=[/?#]|$)")
_SECRET_VALUE = re.compile(r"([?&][^=&#]*(?:" + SECRET_PARAMS.pattern + r")[^=&#]*=)[^&#]*", re.IGNORECASE)


def _redact_unparsable(url: str) -> str:
    """A URL ``urlsplit`` refuses (``http://[::1``), as written but with the same secrets masked
    as :func:`redact_url` masks, found by pattern: a password before ``@``, a key-like path
    segment, a secret query value. Its writer can then see what is wrong with it."""
    url = _USERINFO_PASSWORD.sub(rf"\1{MASK}@", url)
    url = _KEY_IN_PATH.sub(lambda m: _short(m.group()), url)
    return _SECRET_VALUE.sub(rf"\1{MASK}", url)


def redact_text(text: str, url: str) -> str:
    """`text` with `url` shown as :func:`redact_url` shows it, and its secrets masked wherever else
    they appear (a library may quote the URL normalised, or its password alone)."""
    if not url:
        return text
    text = text.replace(url, redact_url(url))
    for secret in _secrets(url):
        text = text.replace(f":{secret}@", f":{MASK}@")
        if len(secret) >= KEEP:  # a very short password would mask every match of it in the text
            text = text.replace(secret, MASK)
    return text


def _short(secret: str) -> str:
    return secret[:KEEP] + MASK


def _secrets(url: str) -> set[str]:
    """The secrets in `url`, as written and percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found = []
    if parts.password:
        found.append(parts.password)
    found += [s for s in parts.path.split("/") if KEY_SEGMENT.match(s)]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if SECRET_PARAMS.search(k) and v]
    return {form for s in found for form in (s, unquote(s))} - {""}
