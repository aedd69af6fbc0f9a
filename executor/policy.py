"""The provider's claim policy: which posted jobs this machine takes.

A job is claimed only when every check passes (``[policy]`` in depin.toml):

- **image**: its digest is in ``images`` (an allowlist of ``sha256:<hex>``); with an empty list, any
  image that exists locally under that digest (the engine is asked);
- **capacity**: cpus <= ``max_cpus``, memory <= ``max_memory_mb``, max runtime <= ``max_runtime``,
  output <= ``max_output_mb``;
- **time to submit**: the job's on-chain ``maxRuntime`` (seconds from claim to submission) leaves at
  least :data:`SUBMIT_MARGIN` seconds beyond the spec's runtime: a job that never exits is stopped
  at its runtime, and after that the container's kill (``KILL_GRACE``), its logs, the archive and
  the submit transaction must still land before the deadline, or the job times out and the
  collateral is slashed. A requester choosing a tight window (runtime + 5 s) and a command that
  never exits could otherwise burn an honest provider's collateral for the price of the gas.
  Inputs get what the window leaves beyond that (:func:`input_deadline`), and a job with http(s)
  inputs must leave :data:`INPUT_MARGIN` seconds more (the SDK's default margin is 120 s);
- **price**: the reward pays at least ``min_reward_per_cpu_second`` per declared CPU-second
  (:func:`depin.spec.cpu_seconds` of the spec: cpus x max runtime);
- **load**: fewer than ``max_concurrent_jobs`` jobs in hand (claimed, not yet submitted). This one
  defers rather than refuses: the dispatcher reconsiders a deferred job when a slot frees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from depin.config import PolicyConfig, env_int
from depin.deployment import to_wei
from depin.spec import POLICY_INPUT_MARGIN, POLICY_SUBMIT_MARGIN, JobSpec, cpu_seconds, fetches_http

# Seconds a submit window must leave beyond the spec's runtime for everything but the inputs:
# starting the container, stopping it at its runtime (KILL_GRACE 10 s, logs 5 s), archiving,
# journaling and the submit transaction (a few blocks).
SUBMIT_MARGIN = env_int("DEPIN_SUBMIT_MARGIN", POLICY_SUBMIT_MARGIN)


# Seconds more a job with http(s) inputs must leave for fetching them (beyond SUBMIT_MARGIN).
INPUT_MARGIN = env_int("DEPIN_INPUT_MARGIN", POLICY_INPUT_MARGIN)


def input_deadline(submit_deadline: int, chain_now: int, runtime: int) -> int:
    """Seconds from now the job's inputs may take: what its submit window (`submit_deadline`, chain
    time) leaves once the spec's `runtime` and :data:`SUBMIT_MARGIN` are kept for the run and the
    submission (0 or less: no time for inputs)."""
    return submit_deadline - chain_now - runtime - SUBMIT_MARGIN


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str = ""
    defer: bool = False  # not now (load), maybe later

    def __bool__(self) -> bool:
        return self.ok


ACCEPT = Decision(True)


@dataclass(frozen=True)
class JobTermsView:
    """The on-chain terms the policy needs (from the index's job hash or from ``getJob``)."""

    reward: int
    max_runtime: int  # seconds from claim to the submit deadline
    cpu_seconds: int = 0


class Policy:
    def __init__(self, config: PolicyConfig, *, image_available: Callable[[str], bool] | None = None) -> None:
        self.config = config
        self.allowed = {d.lower() for d in config.images}
        self.image_available = image_available
        self.min_rate_wei = to_wei(config.min_reward_per_cpu_second)

    def check_image(self, spec: JobSpec) -> Decision:
        digest = spec.image_digest.lower()
        if self.allowed:
            if digest not in self.allowed:
                return Decision(False, f"image {spec.image} is not in the policy's image allowlist")
            return ACCEPT
        if self.image_available is not None and not self.image_available(spec.image):
            return Decision(False, f"image {spec.image} is not available locally under that digest")
        return ACCEPT

    def check_spec(self, spec: JobSpec, terms: JobTermsView) -> Decision:
        """Everything but the load: image, capacity, time to submit, price."""
        r, c = spec.resources, self.config
        if r.cpus > c.max_cpus:
            return Decision(False, f"needs {r.cpus} CPUs; the policy allows {c.max_cpus}")
        if r.memory_mb > c.max_memory_mb:
            return Decision(False, f"needs {r.memory_mb} MB of memory; the policy allows {c.max_memory_mb}")
        if r.max_runtime > c.max_runtime:
            return Decision(False, f"runs up to {r.max_runtime} s; the policy allows {c.max_runtime}")
        if r.output_mb > c.max_output_mb:
            return Decision(False, f"writes up to {r.output_mb} MB; the policy allows {c.max_output_mb}")
        if terms.max_runtime < r.max_runtime + SUBMIT_MARGIN:
            return Decision(
                False,
                f"the submit window is {terms.max_runtime} s, less than the spec's runtime {r.max_runtime} s "
                f"+ {SUBMIT_MARGIN} s to stop it at its runtime, archive and submit",
            )
        if fetches_http(spec) and terms.max_runtime < r.max_runtime + SUBMIT_MARGIN + INPUT_MARGIN:
            return Decision(
                False,
                f"the submit window is {terms.max_runtime} s, less than the spec's runtime {r.max_runtime} s "
                f"+ {SUBMIT_MARGIN} s to stop it at its runtime, archive and submit + {INPUT_MARGIN} s to fetch its inputs",
            )
        needed = self.min_rate_wei * cpu_seconds(spec)
        if terms.reward < needed:
            return Decision(
                False, f"the reward {terms.reward} wei is below {needed} wei ({self.config.min_reward_per_cpu_second} tokens "
                f"per CPU-second x {cpu_seconds(spec)})"
            )
        return self.check_image(spec)

    def check_load(self, active_jobs: int) -> Decision:
        if active_jobs >= self.config.max_concurrent_jobs:
            return Decision(False, f"{active_jobs} jobs in hand (max_concurrent_jobs={self.config.max_concurrent_jobs})", defer=True)
        return ACCEPT

    def evaluate(self, spec: JobSpec, terms: JobTermsView, active_jobs: int) -> Decision:
        decision = self.check_spec(spec, terms)
        if not decision:
            return decision
        return self.check_load(active_jobs)
