#!/usr/bin/env python3
"""Slither CI gate: fail on every High or Medium finding that is not triaged in slither-triage.json.

Runs slither over contracts/ (the same solc and remappings as ape: solc 0.8.37 from py-solc-x,
@openzeppelin from node_modules; dependencies excluded), reads its JSON report and compares the
findings with the committed triage file. Exit status:
  0  no untriaged High/Medium finding and no stale triage entry
  1  an untriaged High/Medium finding, or a triage entry that matches no finding (stale)
  2  the gate could not run: slither or solc missing or failing, malformed triage file or report

Triage file (slither-triage.json at the repository root): a JSON list of entries
  {"detector": "unused-return", "target": "JobMarket._settleDispute",
   "match": "_staking.slash(", "reason": "one line: why this is a false positive or accepted"}
- detector: slither's detector name (the `check` of a finding, e.g. "reentrancy-no-eth");
- target:   "Contract", "Contract.function" or "Contract.function(argtypes)"; it is compared with
            the finding's first element (the function or variable slither reports). A finding that
            belongs to no contract is targeted by its file path (e.g. "contracts/JobMarket.sol");
- match:    optional; a substring the finding's description must contain (e.g. the flagged
            expression), to triage one finding of several in the same function;
- reason:   required, one non-empty line.
An entry may cover several findings; every entry must cover at least one.

Usage (with the project venv; the standard library only, plus py-solc-x to locate solc):
  .venv/bin/python tools/slither_gate.py [--triage FILE] [--report FILE] [-- EXTRA_SLITHER_ARGS...]
  --report FILE  read an existing slither JSON report instead of running slither
Environment: SLITHER (default .venv-slither/bin/slither), SOLC (default: py-solc-x's solc 0.8.37).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRIAGE = ROOT / "slither-triage.json"
SOLC_VERSION = "0.8.37"  # as in ape-config.yaml and tools/install_solc.py
SLITHER_TIMEOUT = 900  # seconds

FAILING_IMPACTS = ("High", "Medium")
ENTRY_KEYS_REQUIRED = ("detector", "target", "reason")
ENTRY_KEYS_OPTIONAL = ("match",)


class GateError(Exception):
    """The gate cannot decide (exit 2)."""


# ---------------------------------------------------------------------------------------- model


@dataclass
class Finding:
    detector: str
    impact: str
    confidence: str
    contract: str | None
    function: str | None  # name, e.g. "getJob"
    signature: str | None  # e.g. "getJob(uint256)"
    file: str | None
    line: int | None
    description: str
    triaged_by: list[int] = field(default_factory=list)  # indexes of matching triage entries

    @property
    def where(self) -> str:
        if self.contract and self.function:
            return f"{self.contract}.{self.function}"
        return self.contract or self.file or "?"

    @property
    def location(self) -> str:
        if self.file is None:
            return "?"
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    @property
    def fails(self) -> bool:
        return self.impact in FAILING_IMPACTS


@dataclass
class Entry:
    detector: str
    target: str
    reason: str
    match: str | None = None

    def covers(self, f: Finding) -> bool:
        if f.detector != self.detector:
            return False
        if self.match is not None and self.match not in f.description:
            return False
        return _target_matches(self.target, f)


def _target_matches(target: str, f: Finding) -> bool:
    if f.contract is None:
        return target == f.file
    if "." not in target:
        return target == f.contract
    contract, member = target.split(".", 1)
    if contract != f.contract or f.function is None:
        return False
    return member == (f.signature if "(" in member else f.function)


# ---------------------------------------------------------------------------------------- parsing


def _walk_parents(element: dict):
    while element:
        yield element
        element = (element.get("type_specific_fields") or {}).get("parent")


def finding_from_result(result: dict) -> Finding:
    elements = result.get("elements") or []
    contract = function = signature = None
    if elements:
        for e in _walk_parents(elements[0]):
            kind = e.get("type")
            if kind == "function" and function is None:
                function = e.get("name")
                signature = (e.get("type_specific_fields") or {}).get("signature")
            elif kind == "contract":
                contract = e.get("name")
                break
    # Point at the flagged statement when slither gives one, else at the first element.
    located = next((e for e in elements if e.get("type") == "node"), elements[0] if elements else {})
    mapping = located.get("source_mapping") or {}
    lines = mapping.get("lines") or []
    return Finding(
        detector=result.get("check", "?"),
        impact=result.get("impact", "?"),
        confidence=result.get("confidence", "?"),
        contract=contract,
        function=function,
        signature=signature,
        file=mapping.get("filename_relative") or mapping.get("filename_short"),
        line=lines[0] if lines else None,
        description=(result.get("description") or "").strip(),
    )


def parse_report(data: dict) -> list[Finding]:
    """Findings of a slither `--json` report; GateError when slither reported a failure."""
    if not isinstance(data, dict):
        raise GateError("slither report is not a JSON object")
    if not data.get("success", False):
        raise GateError(f"slither failed: {data.get('error') or 'success is false, no error given'}")
    results = data.get("results") or {}
    return [finding_from_result(r) for r in results.get("detectors") or []]


def parse_triage(raw) -> list[Entry]:
    """Entries of the triage file; GateError listing every problem when it is malformed."""
    if not isinstance(raw, list):
        raise GateError("triage file must hold a JSON list of entries")
    problems, entries, seen = [], [], set()
    for i, item in enumerate(raw):
        label = f"triage entry #{i + 1}"
        if not isinstance(item, dict):
            problems.append(f"{label}: not an object")
            continue
        unknown = set(item) - set(ENTRY_KEYS_REQUIRED) - set(ENTRY_KEYS_OPTIONAL)
        if unknown:
            problems.append(f"{label}: unknown keys {sorted(unknown)}")
        for key in ENTRY_KEYS_REQUIRED + tuple(k for k in ENTRY_KEYS_OPTIONAL if k in item):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{label}: '{key}' must be a non-empty string")
            elif "\n" in value or "\r" in value:
                problems.append(f"{label}: '{key}' must be one line")
        if any(p.startswith(label + ":") for p in problems):
            continue
        entry = Entry(item["detector"], item["target"], item["reason"].strip(), item.get("match"))
        key = (entry.detector, entry.target, entry.match)
        if key in seen:
            problems.append(f"{label}: duplicate of an earlier entry ({entry.detector} {entry.target})")
        seen.add(key)
        entries.append(entry)
    if problems:
        raise GateError("malformed triage file:\n  " + "\n  ".join(problems))
    return entries


def load_triage(path: Path) -> list[Entry]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise GateError(f"triage file {path} does not exist (commit an empty list [] if nothing is triaged)")
    except json.JSONDecodeError as exc:
        raise GateError(f"triage file {path} is not valid JSON: {exc}")
    return parse_triage(raw)


# ---------------------------------------------------------------------------------------- gate


@dataclass
class Verdict:
    findings: list[Finding]
    entries: list[Entry]
    untriaged: list[Finding]
    stale: list[Entry]

    @property
    def ok(self) -> bool:
        return not self.untriaged and not self.stale


def evaluate(findings: list[Finding], entries: list[Entry]) -> Verdict:
    used = [False] * len(entries)
    for f in findings:
        f.triaged_by = [i for i, e in enumerate(entries) if e.covers(f)]
        for i in f.triaged_by:
            used[i] = True
    untriaged = [f for f in findings if f.fails and not f.triaged_by]
    stale = [e for e, u in zip(entries, used) if not u]
    return Verdict(findings, entries, untriaged, stale)


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line.strip() for line in text.splitlines() if line.strip())


def render(v: Verdict, out=None) -> None:
    out = out or sys.stdout
    for f in v.findings:
        if f.triaged_by:
            reasons = "; ".join(v.entries[i].reason for i in f.triaged_by)
            print(f"triaged   {f.impact.lower():<6} {f.detector} {f.where} {f.location}: {reasons}", file=out)
    for f in v.untriaged:
        print(f"UNTRIAGED {f.impact.lower():<6} {f.detector} {f.where} {f.location}", file=out)
        print(_indent(f.description), file=out)
    for e in v.stale:
        extra = f" match={e.match!r}" if e.match is not None else ""
        print(f"STALE triage entry: {e.detector} {e.target}{extra} matches no finding "
              f"(fixed? remove the entry): {e.reason}", file=out)
    if v.untriaged:
        print("Fix each untriaged finding, or, only if it is a false positive or an accepted design "
              "choice, add an entry with a one-line reason to slither-triage.json.", file=out)
    high = sum(f.impact == "High" for f in v.findings)
    medium = sum(f.impact == "Medium" for f in v.findings)
    other = len(v.findings) - high - medium
    triaged = sum(bool(f.triaged_by) for f in v.findings)
    stale = f", {len(v.stale)} stale triage entries" if v.stale else ""
    print(f"slither: {len(v.findings)} findings ({high} high, {medium} medium, {other} low/informational), "
          f"{triaged} triaged, {len(v.untriaged)} untriaged{stale}", file=out)


# ---------------------------------------------------------------------------------------- running


def solc_path() -> str:
    if os.environ.get("SOLC"):
        return os.environ["SOLC"]
    try:
        from solcx.install import get_executable  # py-solc-x, in the project venv
    except ImportError:
        raise GateError("py-solc-x is not importable: run with .venv/bin/python or set SOLC")
    try:
        return str(get_executable(SOLC_VERSION))
    except Exception as exc:
        raise GateError(f"solc {SOLC_VERSION} is not installed ({exc}); run `make setup`")


def slither_command(slither: str, solc: str, report: Path, extra: list[str]) -> list[str]:
    return [
        slither, "contracts/",
        "--solc", solc,
        "--solc-standard-json",
        # as ape builds them (ape-config.yaml): the optimizer from these arguments, viaIR from
        # tools/solc_via_ir.py (the court's modules only compile through the IR)
        "--solc-args", "--via-ir --optimize --optimize-runs 700",
        "--solc-remaps", f"@openzeppelin/={ROOT}/node_modules/@openzeppelin/",
        "--filter-paths", "node_modules",
        "--exclude-dependencies",
        "--fail-none",  # the gate decides; a non-zero exit then means slither itself failed
        "--json", str(report),
        *extra,
    ]


def run_slither(extra: list[str]) -> dict:
    slither = os.environ.get("SLITHER") or str(ROOT / ".venv-slither" / "bin" / "slither")
    if not os.access(slither, os.X_OK):
        raise GateError(f"{slither} not found; run `make setup` (without SKIP_SLITHER=1)")
    with tempfile.TemporaryDirectory(prefix="slither-gate-") as tmp:
        report = Path(tmp) / "report.json"  # must not exist: slither refuses to overwrite
        cmd = slither_command(slither, str(ROOT / "tools" / "solc_via_ir.py"), report, extra)
        env = dict(os.environ, DEPIN_REAL_SOLC=solc_path())
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SLITHER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise GateError(f"slither did not finish within {SLITHER_TIMEOUT}s")
        log = (proc.stdout + proc.stderr).strip()
        if not report.is_file():
            raise GateError(f"slither exited {proc.returncode} without a report:\n{log[-4000:]}")
        try:
            data = json.loads(report.read_text())
        except json.JSONDecodeError as exc:
            raise GateError(f"slither wrote an unreadable report ({exc}):\n{log[-4000:]}")
        if proc.returncode != 0 and data.get("success", False):
            raise GateError(f"slither exited {proc.returncode}:\n{log[-4000:]}")
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triage", type=Path, default=DEFAULT_TRIAGE, help="triage file (default: %(default)s)")
    parser.add_argument("--report", type=Path, help="read this slither JSON report instead of running slither")
    parser.add_argument("extra", nargs="*", help="extra slither arguments (after --)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        entries = load_triage(args.triage)
        if args.report is not None:
            try:
                data = json.loads(args.report.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise GateError(f"cannot read report {args.report}: {exc}")
        else:
            data = run_slither(args.extra)
        verdict = evaluate(parse_report(data), entries)
    except GateError as exc:
        print(f"slither gate: {exc}", file=sys.stderr)
        return 2
    render(verdict)
    if args.report is None:
        print(f"slither gate: {'passed' if verdict.ok else 'FAILED'} in {time.monotonic() - start:.1f}s")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
