"""The slither gate's own logic (tools/slither_gate.py) on synthetic slither JSON: no slither run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("slither_gate", ROOT / "tools" / "slither_gate.py")
gate = importlib.util.module_from_spec(_spec)
sys.modules["slither_gate"] = gate  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(gate)


# ------------------------------------------------------------------ synthetic slither output


def _contract(name):
    return {"type": "contract", "name": name, "source_mapping": {"filename_relative": f"contracts/{name}.sol"}}


def _function(contract, name, sig, lines=(10, 11, 12)):
    return {
        "type": "function",
        "name": name,
        "source_mapping": {"filename_relative": f"contracts/{contract}.sol", "lines": list(lines)},
        "type_specific_fields": {"parent": _contract(contract), "signature": sig},
    }


def function_finding(check, impact, contract, name, sig, expr, line=42):
    """A finding shaped like slither's: the function first, then the flagged statement (node)."""
    fn = _function(contract, name, sig)
    node = {
        "type": "node",
        "name": expr,
        "source_mapping": {"filename_relative": f"contracts/{contract}.sol", "lines": [line]},
        "type_specific_fields": {"parent": fn},
    }
    return {
        "check": check,
        "impact": impact,
        "confidence": "Medium",
        "description": f"{contract}.{sig} (contracts/{contract}.sol#10-12) flags {expr} (contracts/{contract}.sol#{line})\n",
        "elements": [fn, node],
    }


def local_variable_finding(contract, name, sig, var, line=7):
    fn = _function(contract, name, sig)
    return {
        "check": "uninitialized-local",
        "impact": "Medium",
        "confidence": "Medium",
        "description": f"{contract}.{sig}.{var} (contracts/{contract}.sol#{line}) is a local variable never initialized\n",
        "elements": [
            {
                "type": "variable",
                "name": var,
                "source_mapping": {"filename_relative": f"contracts/{contract}.sol", "lines": [line]},
                "type_specific_fields": {"parent": fn},
            }
        ],
    }


def contract_finding(check, impact, contract):
    return {
        "check": check,
        "impact": impact,
        "confidence": "High",
        "description": f"{contract} (contracts/{contract}.sol#1-9) something\n",
        "elements": [_contract(contract) | {"source_mapping": {"filename_relative": f"contracts/{contract}.sol", "lines": [1]}}],
    }


def report(*detectors):
    return {"success": True, "error": None, "results": {"detectors": list(detectors)}}


MEDIUM = function_finding("unused-return", "Medium", "Market", "settle", "settle(uint256)", "staking.slash(id)")
LOW = function_finding("timestamp", "Low", "Market", "finalize", "finalize(uint256)", "block.timestamp > d")


def entry(detector="unused-return", target="Market.settle", reason="returns only an address; reverts on failure", **kw):
    return {"detector": detector, "target": target, "reason": reason, **kw}


@pytest.fixture
def run(tmp_path, capsys):
    """Runs the gate's CLI on a report and a triage list; returns (exit status, stdout, stderr)."""

    def _run(data, triage):
        rpath, tpath = tmp_path / "report.json", tmp_path / "triage.json"
        rpath.write_text(json.dumps(data))
        tpath.write_text(json.dumps(triage))
        rc = gate.main(["--report", str(rpath), "--triage", str(tpath)])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return _run


# ------------------------------------------------------------------ the four rules


def test_untriaged_medium_fails_and_is_printed(run):
    rc, out, _ = run(report(MEDIUM, LOW), [])
    assert rc == 1
    assert "UNTRIAGED medium unused-return Market.settle contracts/Market.sol:42" in out
    assert "staking.slash(id)" in out  # the description
    assert "slither: 2 findings (0 high, 1 medium, 1 low/informational), 0 triaged, 1 untriaged" in out


def test_untriaged_high_fails(run):
    high = function_finding("reentrancy-eth", "High", "Market", "withdraw", "withdraw()", "token.transfer(a)")
    rc, out, _ = run(report(high), [])
    assert rc == 1
    assert "(1 high, 0 medium, 0 low/informational)" in out


def test_triaged_medium_passes(run):
    rc, out, _ = run(report(MEDIUM, LOW), [entry()])
    assert rc == 0
    assert "UNTRIAGED" not in out
    assert "1 triaged, 0 untriaged" in out


def test_low_and_informational_pass_untriaged(run):
    info = contract_finding("missing-inheritance", "Informational", "Token")
    opt = contract_finding("immutable-states", "Optimization", "Token")
    rc, out, _ = run(report(LOW, info, opt), [])
    assert rc == 0
    assert "slither: 3 findings (0 high, 0 medium, 3 low/informational), 0 triaged, 0 untriaged" in out


def test_no_findings_passes(run):
    rc, out, _ = run({"success": True, "error": None, "results": {}}, [])
    assert rc == 0
    assert "slither: 0 findings" in out


def test_stale_triage_entry_fails(run):
    rc, out, _ = run(report(LOW), [entry()])
    assert rc == 1
    assert "STALE triage entry: unused-return Market.settle" in out
    assert "1 stale triage entries" in out


def test_stale_entry_fails_even_when_other_entries_match(run):
    rc, out, _ = run(report(MEDIUM), [entry(), entry(target="Market.other")])
    assert rc == 1
    assert "STALE triage entry: unused-return Market.other" in out


# ------------------------------------------------------------------ matching


@pytest.mark.parametrize(
    "target, matches",
    [
        ("Market.settle", True),
        ("Market.settle(uint256)", True),
        ("Market", True),  # a whole contract
        ("Market.settle(uint8)", False),
        ("Market.finalize", False),
        ("Other.settle", False),
        ("Other", False),
    ],
)
def test_target_forms(run, target, matches):
    rc, _, _ = run(report(MEDIUM), [entry(target=target)])
    assert rc == (0 if matches else 1)


def test_detector_must_match(run):
    rc, out, _ = run(report(MEDIUM), [entry(detector="reentrancy-no-eth")])
    assert rc == 1
    assert "UNTRIAGED" in out and "STALE" in out


def test_local_variable_finding_targets_its_function(run):
    f = local_variable_finding("Market", "timeout", "timeout(uint256)", "refund")
    rc, out, _ = run(report(f), [entry(detector="uninitialized-local", target="Market.timeout", match=".refund ")])
    assert rc == 0, out


def test_match_narrows_to_one_finding_of_several_in_a_function(run):
    other = function_finding("unused-return", "Medium", "Market", "settle", "settle(uint256)", "staking.unlock(id)", 50)
    rc, out, _ = run(report(MEDIUM, other), [entry(match="staking.slash(id)")])
    assert rc == 1
    assert "UNTRIAGED medium unused-return Market.settle contracts/Market.sol:50" in out
    assert "contracts/Market.sol:42" not in out.split("UNTRIAGED")[1]


def test_one_entry_may_cover_several_findings(run):
    other = function_finding("unused-return", "Medium", "Market", "settle", "settle(uint256)", "staking.unlock(id)", 50)
    rc, out, _ = run(report(MEDIUM, other), [entry()])
    assert rc == 0
    assert "2 triaged, 0 untriaged" in out


# ------------------------------------------------------------------ errors: exit 2


@pytest.mark.parametrize(
    "triage",
    [
        {"detector": "x"},  # not a list
        [entry(reason="")],
        [entry(reason="   ")],
        [entry(reason="two\nlines")],
        [{"detector": "unused-return", "target": "Market.settle"}],  # no reason
        [entry(detecor="typo")],  # unknown key
        [entry(match="")],
        [entry(), entry()],  # duplicate
        ["unused-return Market.settle"],
    ],
)
def test_malformed_triage_is_an_error(run, triage):
    rc, _, err = run(report(MEDIUM), triage)
    assert rc == 2
    assert "triage" in err


def test_slither_failure_report_is_an_error(run):
    rc, _, err = run({"success": False, "error": "Compilation failed", "results": {}}, [])
    assert rc == 2
    assert "Compilation failed" in err


def test_missing_triage_file_is_an_error(tmp_path, capsys):
    rpath = tmp_path / "report.json"
    rpath.write_text(json.dumps(report(LOW)))
    assert gate.main(["--report", str(rpath), "--triage", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------ the committed file


def test_committed_triage_file_is_well_formed():
    entries = gate.load_triage(ROOT / "slither-triage.json")
    for e in entries:
        assert len(e.reason) >= 20, f"reason too thin for {e.detector} {e.target}: {e.reason!r}"


def test_slither_command_mirrors_the_build():
    cmd = gate.slither_command("slither", "/solc", Path("/tmp/r.json"), ["--exclude-low"])
    assert cmd[:2] == ["slither", "contracts/"]
    assert cmd[cmd.index("--solc") + 1] == "/solc"
    assert "--solc-standard-json" in cmd
    assert cmd[cmd.index("--solc-remaps") + 1] == f"@openzeppelin/={ROOT}/node_modules/@openzeppelin/"
    assert cmd[cmd.index("--filter-paths") + 1] == "node_modules"
    assert "--exclude-dependencies" in cmd
    assert cmd[cmd.index("--json") + 1] == "/tmp/r.json"
    assert cmd[-1] == "--exclude-low"
