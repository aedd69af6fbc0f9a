"""The input fetcher's address rule (depin/addresses.py): loopback, private, shared, link-local,
multicast, unspecified, reserved and documentation addresses are refused in every IPv4 and IPv6
spelling, public ones are allowed, and the operator's allow-list overrides the rule."""

from __future__ import annotations

import ipaddress

import pytest

from depin.addresses import AddressRefused, check_addresses, parse_networks, refusal, resolve, resolve_checked

REFUSED = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "this-network"),
    ("0.1.2.3", "this-network"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.127.255.255", "shared (CGNAT)"),
    ("169.254.169.254", "link-local"),
    ("192.0.0.8", "protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    # IPv4 inside IPv6: mapped, compatible, NAT64, 6to4
    ("::ffff:127.0.0.1", "IPv4-in-IPv6 loopback"),
    ("::ffff:7f00:1", "IPv4-in-IPv6 loopback"),
    ("::ffff:169.254.169.254", "IPv4-in-IPv6 link-local"),
    ("::ffff:10.1.2.3", "IPv4-in-IPv6 private"),
    ("::ffff:0.0.0.0", "IPv4-in-IPv6 this-network"),
    ("::127.0.0.1", "IPv4-in-IPv6 loopback"),
    ("::7f00:1", "IPv4-in-IPv6 loopback"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "IPv4-in-IPv6 loopback"),
    ("64:ff9b::a9fe:a9fe", "IPv4-in-IPv6 link-local"),
    ("2002:7f00:1::1", "IPv4-in-IPv6 loopback"),
    ("2002:c0a8:101::1", "IPv4-in-IPv6 private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IETF protocol assignments"),  # Teredo
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2001:4860:4860::8888",
          "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_non_public_addresses_are_refused_with_their_kind(text: str, kind: str) -> None:
    assert refusal(ipaddress.ip_address(text)) == kind


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("017700000001", "127.0.0.1"),
     ("0", "0.0.0.0"), ("localhost", "127.0.0.1"), ("::ffff:7f00:1", "::ffff:127.0.0.1"), ("::", "::")],
)
def test_numeric_host_spellings_resolve_to_what_they_mean_and_are_refused(host: str, address: str) -> None:
    """The C resolver reads decimal, octal and hex IPv4 forms; the check sees the resolved address."""
    assert ipaddress.ip_address(address) in resolve(host, 80)
    with pytest.raises(AddressRefused) as info:
        resolve_checked(host, 80)
    assert info.value.kind


def test_every_address_of_an_answer_is_checked() -> None:
    public, internal = ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.5")
    check_addresses("example", [public])
    with pytest.raises(AddressRefused) as info:
        check_addresses("example", [public, internal])
    assert info.value.address == internal and info.value.kind == "private"


def test_the_allow_list_admits_only_its_networks() -> None:
    allow = parse_networks(["10.1.2.0/24", "fd00:1::/64", "127.0.0.2"])
    check_addresses("h", [ipaddress.ip_address("10.1.2.200"), ipaddress.ip_address("fd00:1::9")], allow)
    check_addresses("h", [ipaddress.ip_address("::ffff:10.1.2.3")], allow)  # a mapped form of an allowed address
    check_addresses("h", [ipaddress.ip_address("127.0.0.2")], allow)
    for outside in ("10.1.3.1", "127.0.0.1", "169.254.169.254", "fd00:2::1"):
        with pytest.raises(AddressRefused):
            check_addresses("h", [ipaddress.ip_address(outside)], allow)
    assert resolve_checked("2130706434", 80, allow) == ipaddress.ip_address("127.0.0.2")
    with pytest.raises(ValueError):
        parse_networks(["10.1.2.1/24"])


@pytest.mark.parametrize("section, key", [("policy", "input_allow_networks"), ("verifier", "result_allow_networks")])
def test_the_allowed_networks_are_read_from_depin_toml_and_checked(tmp_path, section: str, key: str) -> None:
    from depin.config import ConfigError, load_config

    path = tmp_path / "depin.toml"
    assert getattr(getattr(load_config(None, env={}), section), key) == []  # default: none
    path.write_text(f'[{section}]\n{key} = ["10.1.2.0/24", "fd00:1::/64", "127.0.0.2"]\n')
    assert getattr(getattr(load_config(path, env={}), section), key) == ["10.1.2.0/24", "fd00:1::/64", "127.0.0.2/32"]
    path.write_text(f'[{section}]\n{key} = ["10.1.2.1/24"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert f"{section}.{key}" in message and "host bits set" in message and "\n" not in message


def test_the_public_resolver_answers_a_fetch_with_a_checked_address() -> None:
    """depin.addresses.public_resolver, the depin.fetch resolver a verifier fetches a provider's
    result through: the checked address as a string, FetchRefused for a non-public one (unless
    allowed), FetchError for a name that does not resolve."""
    from depin.addresses import public_resolver
    from depin.fetch import FetchError, FetchRefused

    with pytest.raises(FetchRefused, match="127.0.0.1 resolves to a loopback address"):
        public_resolver()("127.0.0.1", 80)
    with pytest.raises(FetchRefused, match="link-local"):
        public_resolver(parse_networks(["127.0.0.0/8"]))("169.254.169.254", 80)
    assert public_resolver(parse_networks(["127.0.0.0/8"]))("2130706434", 80) == "127.0.0.2"
    assert public_resolver()("8.8.8.8", 443) == "8.8.8.8"
    with pytest.raises(FetchError, match="cannot resolve"):
        public_resolver()("no-such-host.invalid", 80)


# --- the host's own addresses (review: a public address of the provider's own reached its services)

_FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 8.8.4.0/24 2 0 2
        |-- 8.8.4.0
           /24 link UNICAST
        |-- 8.8.4.4
           /32 host LOCAL
        |-- 8.8.4.255
           /32 link BROADCAST
     |-- 9.9.9.0
        /29 host LOCAL
"""
_IPV6_ROUTE = (
    "2a000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "2a000000000000000000000000000005 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0\n"
)
_IF_INET6 = "2a000000000000000000000000000006 04 40 00 82     eth0\n"


def test_the_hosts_own_addresses_are_read_from_the_kernels_tables(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from depin import addresses

    (tmp_path / "fib_trie").write_text(_FIB_TRIE)
    (tmp_path / "ipv6_route").write_text(_IPV6_ROUTE)
    (tmp_path / "if_inet6").write_text(_IF_INET6)
    monkeypatch.setattr(addresses, "PROC_NET", tmp_path)
    assert set(map(str, addresses.local_networks())) == {"8.8.4.4/32", "9.9.9.0/29", "2a00::5/128", "2a00::6/128"}
    for own in ("8.8.4.4", "9.9.9.7", "::ffff:8.8.4.4", "2a00::5", "2a00::6"):
        with pytest.raises(AddressRefused, match="this host's own"):
            check_addresses("h", [ipaddress.ip_address(own)])
    # the same public IPv4 in 6to4 form (noticed in stop 39: only the mapped form was refused; the
    # NAT64 and IPv4-compatible forms lie in ::/8 and are refused as reserved whatever they carry)
    for carried in ("2002:808:404::1", "2002:909:907:1::5"):
        with pytest.raises(AddressRefused, match="this host's own"):
            check_addresses("h", [ipaddress.ip_address(carried)])
    for other in ("8.8.4.5", "8.8.8.8", "2a00::7", "2002:808:808::1"):  # on the same link, but not this host's
        check_addresses("h", [ipaddress.ip_address(other)])
    check_addresses("h", [ipaddress.ip_address("8.8.4.4")], parse_networks(["8.8.4.4/32"]))  # the operator's allow list wins
    monkeypatch.setattr(addresses, "PROC_NET", tmp_path / "absent")  # not Linux: nothing more refused
    assert addresses.local_networks() == []
    check_addresses("h", [ipaddress.ip_address("8.8.4.4")])


def test_this_hosts_loopback_is_among_its_own_addresses() -> None:
    from depin.addresses import PROC_NET, local_networks

    if not (PROC_NET / "fib_trie").exists():
        pytest.skip("no /proc/net/fib_trie here")
    assert any(ipaddress.ip_address("127.0.0.1") in net for net in local_networks() if net.version == 4)
