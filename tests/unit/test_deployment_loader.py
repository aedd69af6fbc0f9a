"""depin.deployment.load_deployment: the one deployment loader (file, directory + chain id, object)."""

from __future__ import annotations

from pathlib import Path

import pytest

from depin.deployment import (
    MAX_DEPLOYMENT_FILE_BYTES,
    Deployment,
    DeploymentFileError,
    load_deployment,
    write_deployment,
)

ADDRESSES = {
    "RewardToken": "0x" + "11" * 20,
    "ProviderStaking": "0x" + "22" * 20,
    "JobMarket": "0x" + "33" * 20,
    "ArbiterResolver": "0x" + "44" * 20,
}


def deployment(chain_id: int = 31337, addresses: dict[str, str] | None = None) -> Deployment:
    return Deployment(chain_id, "devnet", 1, dict(ADDRESSES if addresses is None else addresses), {}, "0x" + "55" * 20)


def test_a_file_a_directory_and_an_object_give_the_same_deployment(tmp_path: Path) -> None:
    path = write_deployment(deployment(), tmp_path)
    assert load_deployment(path) == deployment()
    assert load_deployment(str(path)) == deployment()
    assert load_deployment(tmp_path, chain_id=31337) == deployment()
    assert load_deployment(deployment()) == deployment()


def test_a_missing_file_names_it_and_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DeploymentFileError, match=r"31337\.json not found: set DEPIN_DEPLOYMENT"):
        load_deployment(tmp_path, chain_id=31337, hint="set DEPIN_DEPLOYMENT")


def test_reading_is_bounded(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_DEPLOYMENT_FILE_BYTES + 10))
    with pytest.raises(DeploymentFileError, match="larger than"):
        load_deployment(huge)


def test_the_chain_id_must_match(tmp_path: Path) -> None:
    path = write_deployment(deployment(1337), tmp_path)
    with pytest.raises(DeploymentFileError, match="is for chain 1337, not chain 31337"):
        load_deployment(path, chain_id=31337)
    with pytest.raises(DeploymentFileError, match="the deployment is for chain 1337"):
        load_deployment(deployment(1337), chain_id=31337)


def test_required_addresses_must_be_there(tmp_path: Path) -> None:
    path = write_deployment(deployment(addresses={"JobMarket": ADDRESSES["JobMarket"]}), tmp_path)
    with pytest.raises(DeploymentFileError, match="lacks addresses for ProviderStaking"):
        load_deployment(path, require=("JobMarket", "ProviderStaking"))


def test_the_indexer_loader_reports_a_bad_file_as_an_indexer_error(tmp_path: Path) -> None:
    from depin.errors import IndexerError
    from indexer.follower import load_deployment as indexer_load_deployment

    path = write_deployment(deployment(addresses={"JobMarket": ADDRESSES["JobMarket"]}), tmp_path)
    with pytest.raises(IndexerError, match=f"{path.name} lacks addresses for ProviderStaking; redeploy"):
        indexer_load_deployment(path)
    with pytest.raises(IndexerError, match="point DEPIN_DEPLOYMENT at"):
        indexer_load_deployment(tmp_path / "1.json")
    full = write_deployment(deployment(1337), tmp_path)
    assert indexer_load_deployment(full) == deployment(1337)


SOURCES = [("blockhash", "BlockhashRandomness"), ("header", "HeaderRandomness"), ("mock", "MockRandomness")]


@pytest.mark.parametrize(("source", "contract"), SOURCES)
def test_the_randomness_source_is_a_deployment_choice(tmp_path: Path, source: str, contract: str) -> None:
    """`randomness = "header"` (HeaderRandomness) is a parameters choice like the others; a typo is refused."""
    from depin.deployment import DEFAULT_PARAMETERS_FILE, RANDOMNESS_CONTRACTS, ParametersError, load_parameters

    text = DEFAULT_PARAMETERS_FILE.read_text(encoding="utf-8")
    path = tmp_path / "parameters.toml"
    path.write_text(text.replace('randomness = "blockhash"', f'randomness = "{source}"'), encoding="utf-8")
    assert load_parameters(11155111, path).randomness == source
    assert RANDOMNESS_CONTRACTS[source] == contract
    path.write_text(text.replace('randomness = "blockhash"', 'randomness = "prevrandao"'), encoding="utf-8")
    with pytest.raises((ParametersError, ValueError)):
        load_parameters(11155111, path)
