"""The README's Redis data model says what an outside client needs to read the index; these tests
read the README's tables and compare them with the code (``depin/keys.py``, the indexer's value
names) and the contracts' enums, so the documentation cannot drift from what is written."""

from __future__ import annotations

import re

from eth_utils import to_checksum_address

from depin.deployment import REPO_ROOT
from depin.keys import JOB_STATUSES, Keys
from indexer.reducer import FAILURE_CODES, OUTCOMES, VERIFY_MODES

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
INTERFACE = (REPO_ROOT / "contracts" / "IJobMarket.sol").read_text(encoding="utf-8")


def _table(first_header: str) -> list[tuple[str, int]]:
    """The rows (`name`, number) of the README table whose header row starts with `first_header`."""
    section = README[README.index("### Redis data model"):]
    match = re.search(rf"^\| {re.escape(first_header)} \| [^\n]*\n\|[- |]+\|\n((?:\|[^\n]*\n)+)", section, re.MULTILINE)
    assert match, f"no README table headed {first_header!r} under 'Redis data model'"
    rows = []
    for line in match.group(1).splitlines():
        name, number = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((name.strip("`"), int(number)))
    return rows


def _solidity_enum(name: str) -> tuple[str, ...]:
    body = re.search(rf"enum {name} \{{(.*?)\}}", INTERFACE, re.DOTALL)
    assert body, f"no enum {name} in IJobMarket.sol"
    members = [re.sub(r"//.*", "", line).strip().rstrip(",") for line in body.group(1).splitlines()]
    return tuple(m for m in members if m)


def test_status_table_matches_the_code_and_the_contract() -> None:
    table = _table("status")
    assert table == [(name, i) for i, name in enumerate(JOB_STATUSES)]
    assert tuple(name for name, _ in table) == _solidity_enum("JobStatus")


def test_failure_code_table_matches_the_indexer_and_the_contract() -> None:
    table = _table("failureReason")
    assert table == [(name, i) for i, name in enumerate(FAILURE_CODES)]
    assert tuple(name for name, _ in table) == _solidity_enum("FailureCode")


def test_outcome_table_matches_the_indexer_and_the_contract() -> None:
    table = _table("outcome")
    assert table == [(name, i) for i, name in enumerate(OUTCOMES)]
    assert tuple(name for name, _ in table) == _solidity_enum("Outcome")


def test_verify_mode_table_matches_the_indexer() -> None:
    assert _table("verifyMode") == [(name, i) for i, name in enumerate(VERIFY_MODES)] == [("reexec", 0), ("none", 1)]


def test_addresses_in_key_names_are_lower_case_as_documented() -> None:
    """Every key that names an address uses its lower-case hex, whatever case it was given in; the
    README's example key is exactly what Keys builds."""
    market = to_checksum_address("0x" + "ab" * 20)
    who = to_checksum_address("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")
    keys = Keys(31337, market)
    assert keys.prefix == f"depin:31337:{market.lower()}" and market != market.lower()
    built = [keys.provider(who), keys.account(who), keys.verifier(who), keys.jobs_by_requester(who), keys.jobs_by_provider(who)]
    assert all(key.endswith(":" + who.lower()) for key in built)
    assert ":provider:" + who.lower() in README
    assert "`{market}` is the JobMarket address in **lower-case** hex" in README
