from eth_utils import keccak

from .conftest import make_terms


def test_post_claim_submit_finalize(chain, market, provider, registered, post_job):
    """The optimistic path runs end to end (a verify-none job: never drawn) and credits the
    provider the reward plus the rebate kappa * f * R (1 % of R with the devnet parameters)."""
    job_id = post_job(terms=make_terms(verify_mode=1))
    market.claimJob(job_id, sender=provider)
    market.submitResult(job_id, keccak(b"out"), "http://provider-1.local:8700/results/x", sender=provider)
    chain.pending_timestamp += 31
    market.finalize(job_id, sender=provider)
    assert market.getJob(job_id).status == 5  # Finalized
    reward = make_terms()[0]
    assert market.withdrawableOf(provider) == reward + reward // 100
