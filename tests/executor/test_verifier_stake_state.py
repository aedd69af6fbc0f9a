"""The verifier's reading of its own court membership (``executor.verifier.stake_state``), pass
after pass: what it tops up, what it joins, and what it leaves alone because the operator left.
The chain side (a real leave and withdrawal under a running executor's passes) is
``tests/client/test_court_client.py::test_a_running_verifier_executor_does_not_undo_its_operators_leave``;
a displacement needs a full class of members, so its passes are walked here."""

from __future__ import annotations

import pytest

from executor.verifier import Membership, stake_state


def _walk(passes: list[tuple[bool, int]]) -> list[str]:
    seen: Membership | None = None
    states = []
    for joined, leaving in passes:
        seen = stake_state(seen, joined, leaving)
        states.append(seen.state)
    return states


@pytest.mark.parametrize(
    ("passes", "states"),
    [
        # a first start: not a member, then joined by the executor, topped up after a slash
        ([(False, 0), (True, 0), (True, 0)], ["outside", "member", "member"]),
        # the operator's leave: not topped up while leaving, not joined again once withdrawn
        ([(True, 0), (True, 500), (True, 2000), (False, 0), (False, 0)], ["member", "leaving", "leaving", "left", "left"]),
        # a restart during the operator's leave: the leaving stake is taken for a leave (not topped up);
        # once withdrawn the restarted process saw it a member, so it does not join again either
        ([(True, 700), (False, 0)], ["leaving", "left"]),
        # a restart after the withdrawal: court_stake asks to join
        ([(False, 0)], ["outside"]),
        # displaced by a larger joiner: joined again; its displaced stake leaving is no leave
        ([(True, 0), (False, 900), (True, 900), (True, 900), (True, 0)], ["member", "displaced", "member", "member", "member"]),
        # ... but a leave on top of it is
        ([(True, 0), (False, 900), (True, 900), (True, 1400)], ["member", "displaced", "member", "leaving"]),
        # displaced, then the operator withdrew the displaced stake instead of waiting to join again
        ([(True, 0), (False, 900), (False, 0)], ["member", "displaced", "left"]),
    ],
)
def test_what_each_pass_makes_of_the_membership(passes: list[tuple[bool, int]], states: list[str]) -> None:
    assert _walk(passes) == states


def test_a_displaced_stake_withdrawn_while_a_member_again_leaves_nothing_counted_as_displaced() -> None:
    seen = stake_state(stake_state(stake_state(None, True, 0), False, 900), True, 900)
    assert seen == Membership("member", 900)
    seen = stake_state(seen, True, 0)  # the displaced 900 withdrawn
    assert seen == Membership("member", 0)
    assert stake_state(seen, True, 300).state == "leaving"  # a later leave of any size is the operator's
