"""Whether a deployment file names the genuine contracts of a deployment of this version.

A deployment file (``deployments/<chainId>.json``) is handed around: one from someone else, or a
stale one, may name another contract as the market (an attacker's, another contract of the same
deployment, another build of the market), or a token, staking contract, randomness source or court
that the market does not use. :func:`check_contracts` asks the node: the JobMarket's and the
RewardToken's runtime code are the ones this package ships (:func:`depin.artifacts.runtime_code_matches`:
immutables aside, metadata byte for byte), and the market's own ``token()``, ``staking()``,
``randomness()`` and current court (``params().court``) are the file's addresses.

Its callers check the node's chain id first: ``Client.connect`` (every ``depin`` command, the
executors) and the indexer at start-up. A node that does not answer raises
:class:`~depin.chain.RpcUnavailable` (a :class:`~depin.errors.ChainError`: the indexer waits for it);
only an answer that shows the wrong contracts raises :class:`NotGenuine`, and a node whose head is
still below the deployment block, or one holding the deployment's first transactions but not its
last (no JobMarket yet where the deployer's next nonces create it; a JobMarket with no court yet), or
one with no state at the head it names (a load balancer's backends out of step), its subclass
:class:`NotSyncedYet` (the indexer waits for it).
"""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address

from depin.artifacts import runtime_code_matches
from depin.chain import RpcClient, RpcError
from depin.contracts import Deployed
from depin.deployment import Deployment
from depin.errors import DepinError

# The file's addresses that the check covers (the market links the last four).
CHECKED = ("JobMarket", "RewardToken", "ProviderStaking", "Randomness", "VerificationCourt")


class NotGenuine(DepinError):
    """The deployment file's contracts are not the deployment it claims to be (one line: which, and what to do)."""


class NotSyncedYet(NotGenuine):
    """The node has not reached the end of the deployment yet (a node still syncing): its head is
    below the deployment block, or it holds the deployment's first transactions but not its last
    (`partial` says which). Not a verdict on the file: wait for the node, or use a synced one."""

    def __init__(self, head: int, deploy_block: int, where: str, partial: str = "") -> None:
        self.head, self.deploy_block, self.partial = head, deploy_block, partial
        at = f"past the deployment block {deploy_block}, but {partial}" if partial else f"the deployment block {deploy_block}"
        super().__init__(
            f"the node {where} is behind the deployment: its head is block {head}, {at} (still syncing?); wait for it "
            "to catch up, or use a synced node"
        )


def _check_shipped_code(name: str, address: str, code: str, where: str) -> None:
    """Raises NotGenuine when `code` (``eth_getCode``'s answer for `address`) is not the shipped
    runtime code of contract `name`."""
    try:
        matches = runtime_code_matches(name, bytes.fromhex(code.removeprefix("0x")))
    except ValueError:  # a node that answers no hex
        matches = False
    if not matches:
        raise NotGenuine(
            f"the deployment file's {name} {address} {where} is not the {name} this depin version ships "
            "(another contract, or another build or version of it): use the deployment file of a deployment "
            "of this version, or the depin version that deployed it"
        )


# What eth_getCode answers for an address without code.
_NO_CODE = ("0x", "0x0")

# How many of the deployer's next nonces a file's absent JobMarket may be created at (the deploy
# sends a handful of transactions; a node mid-way through them has not seen the rest yet).
_DEPLOY_NONCES = 32


def _still_to_come(rpc: RpcClient, deployment: Deployment, address: str, block: int) -> bool:
    """Whether `address` (absent on the node at `block`) is the address a CREATE of the file's
    deployer makes at one of its next nonces after `block`: the deployment's own later transactions
    will create it (a node in the middle of the deployment), where any other absent address (a file
    of another instance of the chain, or an altered one) never comes."""
    deployer = (deployment.deployer or "").lower()
    if not (deployer.startswith("0x") and len(deployer) == 42):
        return False
    sender = bytes.fromhex(deployer[2:])
    nonce = rpc.nonce(deployment.deployer, block)
    wanted = bytes.fromhex(address.lower().removeprefix("0x"))
    return any(_create_address(sender, n) == wanted for n in range(nonce, nonce + _DEPLOY_NONCES))


def _create_address(sender: bytes, nonce: int) -> bytes:
    """The address a CREATE by `sender` (20 bytes) at `nonce` makes: keccak(rlp([sender, nonce]))[12:]."""
    if nonce == 0:
        encoded_nonce = b"\x80"
    elif nonce < 0x80:
        encoded_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        encoded_nonce = bytes([0x80 + len(raw)]) + raw
    payload = b"\x94" + sender + encoded_nonce
    return keccak(bytes([0xC0 + len(payload)]) + payload)[12:]


def check_contracts(rpc: RpcClient, deployment: Deployment) -> None:
    """Raises :class:`NotGenuine` (one line) unless `deployment`'s contracts on the node behind
    `rpc` (whose chain id the caller checked) are the genuine deployment (see the module doc)."""
    where = f"on chain {deployment.chain_id} (node {rpc.shown_url})"
    if "JobMarket" in deployment.addresses:  # first: a file of another instance of the chain
        market = deployment.addresses["JobMarket"]
        code = rpc.get_code(market)
        if code in _NO_CODE:  # a node still syncing? Every read below is at one block: a node that
            head = rpc.block_number()  # mines meanwhile (creating the market) is not another instance
            try:
                code = rpc.get_code(market, head)
                token = deployment.addresses.get("RewardToken")  # the deploy's first contract: there, then the rest is to come
                to_come = bool(code in _NO_CODE and head >= deployment.deploy_block and token and (
                    rpc.get_code(token, head) not in _NO_CODE and _still_to_come(rpc, deployment, market, head)
                ))
            except RpcError as exc:  # no state at the head it gave: a load balancer whose backends are not in step
                partial = "" if head < deployment.deploy_block else (
                    f"it has no state at that block ({exc.rpc_message[:120]}; a load-balanced node whose backends are not in step?)"
                )
                raise NotSyncedYet(head, deployment.deploy_block, where, partial) from None
            if code in _NO_CODE:
                if head < deployment.deploy_block:
                    raise NotSyncedYet(head, deployment.deploy_block, where)
                if to_come:
                    raise NotSyncedYet(head, deployment.deploy_block, where, "its deployer has not created the JobMarket yet")
                raise NotGenuine(
                    f"no JobMarket contract at {market} {where}: the deployment file belongs to another instance of this "
                    "chain (was the devnet restarted? deploy again)"
                )
        _check_shipped_code("JobMarket", market, code, where)
    missing = [name for name in CHECKED if name not in deployment.addresses]
    if missing:
        raise NotGenuine(f"the deployment file lacks addresses for {', '.join(missing)}; get it again from the deployer")
    addresses = {name: to_checksum_address(deployment.addresses[name]) for name in CHECKED}
    market = addresses["JobMarket"]
    _check_shipped_code("RewardToken", addresses["RewardToken"], rpc.get_code(addresses["RewardToken"]), where)
    job_market = Deployed(addresses).job_market
    linked = {
        "RewardToken": job_market.token(),
        "ProviderStaking": job_market.staking(),
        "Randomness": job_market.randomness(),
        "VerificationCourt": job_market.params(),  # MarketParams.court (index 16): the current court
    }
    for name, call in linked.items():
        answer = call.decode(rpc.eth_call({"to": call.to, "data": call.data}))
        actual = to_checksum_address(answer[16] if name == "VerificationCourt" else answer)
        if name == "VerificationCourt" and int(actual, 16) == 0:  # the deploy's last transaction links it
            raise NotSyncedYet(rpc.block_number(), deployment.deploy_block, where, "its JobMarket has no court yet")
        if actual != addresses[name]:
            raise NotGenuine(
                f"the deployment file names {name} {addresses[name]}, but its JobMarket {market} {where} "
                f"uses {actual}: the file is stale or altered; get it again from the deployer"
            )


def current_court(rpc: RpcClient, deployment: Deployment) -> str:
    """The court the deployment's JobMarket uses now (``params().court``, checksummed): governance
    may change it (``setParams``, a new parameter version)."""
    call = Deployed({"JobMarket": deployment.addresses["JobMarket"]}).job_market.params()
    return to_checksum_address(call.decode(rpc.eth_call({"to": call.to, "data": call.data}))[16])
