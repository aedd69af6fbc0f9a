from eth_utils import keccak

from .conftest import make_terms


def test_post_claim_submit_finalize(chain, market, provider, registered, post_job):
    """The optimistic path runs end to end and credits the provider the reward."""
    job_id = post_job()
    market.claimJob(job_id, sender=provider)
    market.submitResult(job_id, keccak(b"out"), "http://provider-1.local:8700/results/x", sender=provider)
    chain.pending_timestamp += 31
    market.finalize(job_id, sender=provider)
    assert market.getJob(job_id).status == 5  # Finalized
    assert market.withdrawableOf(provider) == make_terms()[0]
