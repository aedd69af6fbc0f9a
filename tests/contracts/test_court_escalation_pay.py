"""The court's payouts and seat reserves around bondless escalations (found by review, stop 38):
a Split after an escalation pays the auditor A and the earlier rounds in full, the escalated round
shares what is left (F1); the juror bond floor is 3w, which pays an escalated jury in full (F2);
sigma R is locked once per verifier and case, so a small member can take several seats of one case,
and a round short of votes escalates instead of tallying a one-vote Split that paid a caught lazy
provider (F3). Each test failed on the contracts before the fix."""

from __future__ import annotations

from eth_utils import keccak

from .test_court import (  # noqa: F401  (env, c: the fixtures of test_court)
    B_AUDIT,
    B_CHALLENGE,
    B_JUROR,
    BAD,
    CANARY,
    COLLATERAL,
    CONCLUDED,
    GOOD,
    GOOD_OF,
    OTHER,
    PARAMS,
    RIGHT,
    SALT,
    SIGMA_R,
    SPLIT,
    STAKE,
    TALLIED,
    TOKEN,
    WRONG,
    A,
    Court,
    E,
    R,
    W,
    authorize,
    c,
    canary_digest,
    env,
    good_job,
    params_tuple,
    reverts_with,
    seat_commitment,
    seat_pay,
    wallet,
)

ACTIVE = 1


def _short_round(c: Court, job: int, votes: list[bytes | None]) -> list:
    """Every seat of the current round is taken; seats with a digest commit and reveal it after the
    commit deadline, seats with None never commit (no-shows); then `advance` past the reveal deadline."""
    c.ready()
    rnd = c.case(job).round
    holders = [c.known[c.court.drawnFor(job, rnd, seat)] for seat in range(len(votes))]
    for seat, h in enumerate(holders):
        c.tx(c.court.takeSeat, job, seat, sender=h)
    for seat, d in enumerate(votes):
        if d is not None:
            c.tx(c.court.commit, job, seat, seat_commitment(holders[seat].address, job, rnd, seat, d), sender=holders[seat])
    c.wait_until(c.case(job).commitDeadline)
    for seat, d in enumerate(votes):
        if d is not None:
            c.tx(c.court.reveal, job, seat, d, SALT, sender=holders[seat])
    c.wait_until(c.case(job).revealDeadline)
    c.advance(job)
    return holders


def test_a_split_after_a_bondless_escalation_pays_the_auditor_and_earlier_jurors_first(c):
    """Deployed parameters (B_j = 3 w). A job whose runs disagree (a Split job): the auditor
    reveals another digest than the provider's (round 0 -> K = 3), round 1 reveals GOOD and BAD
    and its third seat is a no-show: undecided, so it escalates to a 7-jury without an appeal
    bond. The 7-jury splits too. The budget is the no-show's bond B_j = 3w (pot) + E = A + 3w:
    A + 6w against A + 9w owed, so not everyone can get w. Found by review: the seats were paid
    latest round first and the Split top-up drew on all of E, so the 7 escalated jurors took
    everything and the auditor (A) and the coherent round-1 jurors (w) got nothing. Now the audit
    pay A is kept for the auditor, a Split draws at most E's jury deposit 3w, and the rounds are
    paid in order: the auditor A, round 1 w each, and the escalated round (the only one that
    brought no money of its own) shares what is left, 4w over 7 seats.
    (The reviewer expected w for all 7 escalated jurors too; the money is not there: that would
    take 3w more than the no-show's bond and the requester's escrow hold.)"""
    job = good_job(c)
    auditor = c.audit(job, OTHER)  # disagrees with the provider: round 0 tally Wrong -> K = 3
    assert c.case(job).round == 1
    _short_round(c, job, [GOOD, BAD, None])  # a no-show; 1-1 could still become Wrong/Right
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 2  # escalated, no appeal bond
    c.jury(job, [GOOD, GOOD, GOOD, BAD, BAD, BAD, OTHER])
    c.advance(job)
    assert c.case(job).tally == SPLIT
    requester_before = wallet(c, c.requester)
    receipt = c.finish_window(job)
    assert c.case(job).outcome == SPLIT
    pay = seat_pay(c, receipt)
    print("pay", {k: v / TOKEN for k, v in sorted(pay.items())})
    assert pay[(0, 0)] == A  # the coherent auditor
    assert [pay[(1, 0)], pay[(1, 1)]] == [W, W]  # the coherent round-1 jurors
    share = (B_JUROR + 3 * W - 2 * W) // 7  # what the no-show's bond and the jury deposit leave
    assert [pay[(2, i)] for i in range(7)] == [share] * 7
    assert wallet(c, c.requester) == requester_before + (B_JUROR + W - 7 * share)  # E spent (wei of dust back)
    assert c.court.getVerifier(auditor).locked == 0


def test_the_juror_bond_floor_is_3w_so_an_escalated_jury_is_paid(c):
    """Found by review: setParams accepted jurorBondBps = jurorPayBps (B_j = w), and then a 7-jury
    escalated by a no-show was paid 5.7 R of the 8.8 R owed. The floor is now B_j >= 3w (3 -> 7
    needs B_j >= 2.5w, 7 -> 15 after an appeal 2.75w). At the floor, the reviewer's case: the
    provider is right, the audit agrees, a challenger (bond 3.5 R) takes it to K = 3: GOOD, BAD
    (the challenger's accomplice) and a no-show -> escalates to a 7-jury that confirms the provider.
    The pot is the challenge bond + the accomplice's bond + the no-show's = 3.5 R + 6.6 R, more than
    the 8 coherent jurors' 8.8 R: every one is paid w."""
    with reverts_with("ParamOutOfBounds"):
        c.court.setParams(params_tuple(jurorBondBps=3 * 11_000 - 1), sender=c.owner)
    assert c.court.params().jurorBondBps == 3 * c.court.params().jurorPayBps  # the tests run at the floor
    job = good_job(c)
    c.tx(c.court.challenge, job, sender=c.others[1], bonds=B_CHALLENGE)
    c.audit(job, GOOD)
    assert c.case(job).round == 1
    _short_round(c, job, [GOOD, BAD, None])
    assert c.case(job).round == 2 and c.case(job).phase == ACTIVE
    c.jury(job, [GOOD] * 7)
    c.advance(job)
    assert c.case(job).tally == RIGHT
    c.bonds = 0
    supply = c.token.totalSupply()
    receipt = c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    pay = seat_pay(c, receipt)
    print("pay", {k: v / TOKEN for k, v in sorted(pay.items())})
    unpaid = [k for k in ((2, i) for i in range(7)) if pay[k] != W] + ([(1, 0)] if pay[(1, 0)] != W else [])
    assert unpaid == [], f"coherent jurors paid less than w: {unpaid}"
    assert c.token.totalSupply() == supply - (B_CHALLENGE + 2 * B_JUROR - 8 * W)  # the rest burned


def test_one_sigma_r_reserve_a_case_lets_a_member_fill_a_jury_and_the_caught_lazy_provider_loses(c):
    """Found by review (a regression from 0ee0488): each open seat locked max(bond, sigma R) until
    the case ended, so a class whose only member stakes 2 sigma R (400 tokens here) audited a lazy
    provider's job, caught it, and could then take one jury seat only: the seating closed with one
    GOOD vote of three and the round was tallied a Split (the provider paid). Now sigma R is locked
    once per (verifier, case), plus each seat's bond: the member fills the jury and the case ends
    ProviderWrong."""
    solo = c.others[3]
    c.tx(c.court.setClassOpen, 5, True, sender=c.owner)
    c.tx(c.court.join, 2 * 20 * R, 5, sender=solo)  # 2 sigma R
    c.tx(c.court.setPlatformClass, 5, sender=c.provider)
    c.chain.mine(3)
    job = c.job(BAD)  # a lazy provider
    GOOD_OF[job] = BAD
    assert c.court.drawnFor(job, 0, 0) == solo.address
    c.audit(job, GOOD)  # caught
    case = c.case(job)
    assert case.round == 1 and case.phase == ACTIVE
    assert c.court.getVerifier(solo).locked == SIGMA_R  # B_a + its reserve
    c.ready()
    for seat in range(3):
        assert c.court.drawnFor(job, 1, seat) == solo.address
        c.tx(c.court.takeSeat, job, seat, sender=solo)
    assert c.court.getVerifier(solo).locked == SIGMA_R + 3 * B_JUROR  # each jury seat: its bond
    for seat in range(3):
        c.tx(c.court.commit, job, seat, seat_commitment(solo.address, job, 1, seat, GOOD), sender=solo)
    for seat in range(3):
        c.tx(c.court.reveal, job, seat, GOOD, SALT, sender=solo)
    c.advance(job)  # all in
    case = c.case(job)
    assert case.phase == TALLIED and case.tally == WRONG
    c.finish_window(job)
    assert c.case(job).outcome == WRONG
    v = c.court.getVerifier(solo)
    assert v.locked == 0 and v.free == 2 * 20 * R  # every bond and the reserve back


def test_a_jury_short_of_seats_nobody_could_take_escalates(c):
    """The second half of the same finding: when the seating closes (redraws spent) with seats
    nobody could take, and the missing votes could change the tally, the round escalates to the
    next jury instead of tallying what it has (one GOOD vote of three was a Split). Here the class's
    only member stakes sigma R + B_j: the audit and one jury seat, no more. Its one vote escalates
    the round to a 7-jury; it then adds stake and fills it; ProviderWrong. The pot is the collateral
    (40) only (nobody forfeited a bond): the round-1 juror is paid w first, the 7 escalated jurors
    share the 29 left."""
    solo = c.others[3]
    c.tx(c.court.setClassOpen, 5, True, sender=c.owner)
    c.tx(c.court.join, SIGMA_R + B_JUROR, 5, sender=solo)
    c.tx(c.court.setPlatformClass, 5, sender=c.provider)
    c.chain.mine(3)
    job = c.job(BAD)  # a lazy provider
    GOOD_OF[job] = BAD
    c.audit(job, GOOD)
    assert c.case(job).round == 1
    c.ready()
    c.tx(c.court.takeSeat, job, 0, sender=solo)
    for seat in (1, 2):
        with reverts_with("InsufficientFreeStake"):
            c.court.takeSeat(job, seat, sender=solo)
    for _ in range(PARAMS["maxRedraws"]):
        c.wait_until(c.case(job).seatDeadline)
        c.advance(job)  # redraws the empty seats
        c.ready()
    c.tx(c.court.commit, job, 0, seat_commitment(solo.address, job, 1, 0, GOOD), sender=solo)
    c.wait_until(c.case(job).seatDeadline)
    c.wait_until(c.case(job).commitDeadline)
    c.tx(c.court.reveal, job, 0, GOOD, SALT, sender=solo)
    c.wait_until(c.case(job).revealDeadline)
    receipt = c.advance(job)
    tallied = receipt.events.filter(c.court.RoundTallied)[0]
    assert tallied.round == 1 and tallied.tally == SPLIT and tallied.windowEnd == 0  # not standing
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 2
    c.tx(c.court.addStake, 7 * B_JUROR, sender=solo)
    c.jury(job, [GOOD] * 7)
    c.advance(job)
    assert c.case(job).tally == WRONG
    receipt = c.finish_window(job)
    assert c.case(job).outcome == WRONG
    pay = seat_pay(c, receipt)
    assert pay[(0, 0)] == A and pay[(1, 0)] == W
    assert [pay[(2, i)] for i in range(7)] == [(COLLATERAL - W) // 7] * 7
    assert c.court.getVerifier(solo).locked == 0


def test_a_canary_catch_takes_every_seat_of_a_holder_and_sigma_r_once(c):
    """With sigma R locked once per (verifier, case), a copier holding several seats of a canary
    job loses every seat's bond and sigma R once (exposeCanary takes all its seats in one call), and
    its lock backs the sigma R; the slash can never touch another verifier's stake."""
    solo, signer, op_requester = c.others[3], c.others[0], c.others[2]
    c.tx(c.court.grantRole, c.court.CANARY_ROLE(), signer, sender=c.owner)
    c.tx(c.court.setClassOpen, 5, True, sender=c.owner)
    c.tx(c.court.join, 2 * SIGMA_R, 5, sender=solo)
    c.tx(c.court.setPlatformClass, 5, sender=c.provider)
    c.chain.mine(3)
    secret = keccak(b"a canary with a jury")
    fake = canary_digest(secret)
    job = c.job(fake, requester=op_requester)
    GOOD_OF[job] = fake
    c.tx(c.court.challenge, job, sender=c.others[1], bonds=B_CHALLENGE)  # the audit then goes to a jury
    c.audit(job, fake)  # the lazy auditor copies the digest the operator hands out
    assert c.case(job).round == 1
    c.jury(job, [fake] * 3)  # and copies it in its three jury seats
    assert c.court.getVerifier(solo).locked == SIGMA_R + 3 * B_JUROR
    supply = c.token.totalSupply()
    c.bonds = 0  # the challenger's bond goes back
    receipt = c.tx(c.court.exposeCanary, job, secret, SALT, authorize(c, signer, job), sender=op_requester)
    assert c.case(job).outcome == CANARY
    lost = sum(e.amount for e in receipt.events.filter(c.court.VerifierSlashed))
    assert lost == B_AUDIT + 3 * B_JUROR + SIGMA_R
    v = c.court.getVerifier(solo)
    assert v.locked == 0 and v.free == 2 * SIGMA_R - lost
    assert c.token.totalSupply() == supply - lost


# ------------------------------------------------------------------------------------- what held


def test_held_escalations_with_no_shows_in_two_rounds_then_arbiter_conserve_and_release_everything(c):
    """(Passes.) Lazy provider; the audit catches it; round 1 (K = 3): GOOD, BAD, no-show ->
    escalates; round 2 (K = 7): 3 GOOD, 3 BAD, no-show -> escalates; round 3 (K = 15) all GOOD;
    the provider appeals to the arbiter (15 w), who rules ProviderWrong. A round-1 juror requests
    to leave most of its free stake while its seat is locked. Conservation is checked after every
    transaction (Court.tx); at the end nothing is locked, no bond is held, and the leaver withdraws."""
    job = c.job(BAD)
    GOOD_OF[job] = BAD
    c.audit(job, GOOD)
    holders1 = _short_round(c, job, [GOOD, BAD, None])
    assert c.case(job).round == 2
    leaver = holders1[0]
    free = c.court.getVerifier(leaver).free
    c.tx(c.court.requestLeave, free - 5_000 * TOKEN, sender=leaver)  # keeps enough for its later seats
    _short_round(c, job, [GOOD, GOOD, GOOD, BAD, BAD, BAD, None])
    assert c.case(job).round == 3 and c.case(job).phase == ACTIVE
    c.jury(job, [GOOD] * 15)
    c.advance(job)
    assert c.case(job).tally == WRONG
    c.tx(c.court.appeal, job, sender=c.provider, bonds=15 * W)
    c.tx(c.court.arbiterRule, job, WRONG, sender=c.owner)
    c.wait(PARAMS["arbiterDelay"] + 1)
    c.bonds = 0
    receipt = c.advance(job)
    assert c.case(job).outcome == WRONG
    pay = seat_pay(c, receipt)
    print("pay", {k: v / TOKEN for k, v in sorted(pay.items())})
    for v in c.known.values():
        assert c.court.getVerifier(v).locked == 0
    stakes = sum(c.court.getVerifier(v).free + c.court.getVerifier(v).unbonding for v in c.known.values())
    assert c.court.accountedBalance() == stakes == c.token.balanceOf(c.court)
    c.wait(c.court.leaveDelay() + 1)
    c.tx(c.court.withdrawLeft, sender=leaver)


def test_a_split_after_two_bondless_escalations_pays_every_earlier_round_in_full(c):
    """As the first test, one more level: round 2 (K = 7) reveals 3 GOOD, 2 BAD, 1 OTHER and has a
    no-show (undecided: 4 votes for the provider would be a majority) -> escalates to K = 15, which
    splits 5/5/5. Budget: two no-shows' bonds (2 * 3w) + E (A + 3w) = A + 9w; owed: the auditor A
    and 2 + 6 + 15 coherent jurors (23w). Found by review: the fifteen were paid first, ten took
    everything, and the auditor, every round-1 and round-2 juror and five round-3 jurors got
    nothing. Now the auditor, round 1 and round 2 are paid in full (A + 8w) and the 15 escalated
    jurors share the w left. (The reviewer expected everyone in full: 14w more than there is.)"""
    job = good_job(c)
    c.audit(job, OTHER)
    _short_round(c, job, [GOOD, BAD, None])
    assert c.case(job).round == 2
    _short_round(c, job, [GOOD, GOOD, GOOD, BAD, BAD, OTHER, None])
    assert c.case(job).round == 3 and c.case(job).phase == ACTIVE
    c.jury(job, [GOOD] * 5 + [BAD] * 5 + [OTHER] * 5)
    c.advance(job)
    assert c.case(job).tally == SPLIT
    receipt = c.finish_window(job)
    assert c.case(job).outcome == SPLIT
    pay = seat_pay(c, receipt)
    print("pay", {k: v / TOKEN for k, v in sorted(pay.items())})
    assert pay[(0, 0)] == A
    assert [pay[(1, i)] for i in range(2)] == [W] * 2
    assert [pay[(2, i)] for i in range(6)] == [W] * 6
    share = (2 * B_JUROR + 3 * W - 8 * W) // 15
    assert share > 0 and [pay[(3, i)] for i in range(15)] == [share] * 15
