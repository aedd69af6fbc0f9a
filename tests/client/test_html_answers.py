"""A URL the CLI fetches for the user (an input of `depin job post`, a job's result archive) that
answers an HTML page (a login page, a captive portal) is said to be one: status, content type,
where the redirects led, the page's first bytes. Inputs that are text (CSV, JSON, plain text), and
an HTML page the requester names as such (``page.html=URL``), still pass. A real local HTTP server;
the real CLI and client."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from depin.client import ResultUnavailable
from depin.commitment import commitment
from depin.deployment import to_wei
from depinctl.cli import app
from tests.cli_errors import assert_one_line_error

from .conftest import DIGEST, Devnet, make_spec

IMAGE = f"depin/test@sha256:{DIGEST}"
LOGIN = b"<!DOCTYPE html>\n<html><head><title>Sign in - Corp SSO</title></head><body><form>...</form></body></html>\n"


@contextmanager
def portal(files: dict[str, tuple[str | None, bytes]]) -> Iterator[str]:
    """Serves `files` (path -> (content type or None, body)); every other path is redirected (302) to
    ``/login``, a sign-in page, as a captive portal or a single-sign-on proxy does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/login":
                kind, body = "text/html; charset=utf-8", LOGIN
            elif self.path in files:
                kind, body = files[self.path]
            else:
                self.send_response(302)
                self.send_header("Location", "/login")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            if kind is not None:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _post(*inputs: str):
    args = ["job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run", "--clear"]
    for item in inputs:
        args += ["--input", item]
    return CliRunner().invoke(app, args)


def test_an_input_url_answering_a_login_page_is_named_an_html_page() -> None:
    with portal({"/page.html": ("text/html", LOGIN), "/noname": (None, LOGIN)}) as base:
        line = assert_one_line_error(
            _post(f"{base}/data/train.tar.gz"),
            f"{base}/data/train.tar.gz", "HTML page", "not the file", "HTTP 200", "text/html; charset=utf-8",
            f"{base}/login", "<!DOCTYPE html>", "Sign in - Corp SSO",
        )
        assert "page.html=" in line  # how to post an HTML page on purpose
        # a page served without a content type is known by its first bytes
        assert_one_line_error(_post(f"data.bin={base}/noname"), "HTML page", "<!DOCTYPE html>")


def test_text_inputs_and_html_named_as_such_pass() -> None:
    csv, js = b"a,b\n1,2\n", b'{"k": [1, 2]}\n'
    served = {
        "/t.csv": ("text/csv", csv), "/t.json": ("application/json", js), "/t.txt": ("text/plain; charset=utf-8", b"hi\n"),
        "/raw": (None, b"<not html> just text\n"), "/page.html": ("text/html", LOGIN), "/x": ("text/html", LOGIN),
    }
    with portal(served) as base:
        result = _post(f"{base}/t.csv", f"{base}/t.json", f"{base}/t.txt", f"raw={base}/raw", f"{base}/page.html",
                       f"page.htm={base}/x")
        assert result.exit_code == 0, result.stderr
    inputs = {i["path"]: i["sha256"] for i in json.loads(result.stdout)["inputs"]}
    assert inputs == {
        "t.csv": hashlib.sha256(csv).hexdigest(), "t.json": hashlib.sha256(js).hexdigest(),
        "t.txt": hashlib.sha256(b"hi\n").hexdigest(), "raw": hashlib.sha256(b"<not html> just text\n").hexdigest(),
        "page.html": hashlib.sha256(LOGIN).hexdigest(), "page.htm": hashlib.sha256(LOGIN).hexdigest(),
    }


def test_a_result_url_answering_an_html_page_is_named_one(devnet: Devnet, tmp_path: Path) -> None:
    requester = devnet.client(devnet.new_account(20))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    with portal({}) as base:  # the result and its manifest both lead to the sign-in page
        job_id = requester.post_job(make_spec(201), reward=to_wei(1), seal=False).job_id
        provider.claim(job_id)
        uri = f"{base}/results/{'ab' * 32}"
        provider.submit_result(job_id, commitment(provider.address, job_id, b"\x01" * 32, b"\x02" * 32), uri)
        with pytest.raises(ResultUnavailable) as caught:
            requester.download_result(job_id, tmp_path / "out")
    message = str(caught.value)
    for fragment in (uri, "HTML page", "HTTP 200", "text/html", f"{base}/login", "<!DOCTYPE html>"):
        assert fragment in message, message
    assert not (tmp_path / "out").exists()
