"""Which network addresses a fetch of somebody else's URL may connect to.

A job's input URL is written by the requester, so it must never make the provider's machine talk to
its own network: the loopback interface, the LAN, a cloud metadata service at 169.254.169.254. The
fetcher (:mod:`executor.inputs`) resolves a host name once, checks **every** address of the answer
with :func:`check_addresses`, and connects only to a checked address; it does so again for every
redirect. An address is refused (:func:`refusal` names why) when it is

- loopback, private (RFC 1918, ULA ``fc00::/7``), shared/CGNAT (``100.64.0.0/10``), link-local
  (``169.254.0.0/16``, ``fe80::/10``), site-local (``fec0::/10``), multicast, unspecified
  (``0.0.0.0``, ``::``), reserved (``240.0.0.0/4``, broadcast), documentation or benchmarking
  (``192.0.2.0/24``, ``198.51.100.0/24``, ``203.0.113.0/24``, ``2001:db8::/32``, ``3fff::/20``,
  ``198.18.0.0/15``) or otherwise not globally routable (the :mod:`ipaddress` properties, plus the
  explicit ranges of :data:`REFUSED_NETWORKS` so that the rule does not depend on the Python version);
- one of the host's own addresses (:func:`local_networks`, read from the kernel at every check),
  public ones included: a service bound to every interface answers there;
- an IPv6 form that carries a refused IPv4 address: IPv4-mapped (``::ffff:127.0.0.1``),
  IPv4-compatible (``::127.0.0.1``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``); Teredo
  (``2001::/32``) is refused whole.

An operator who needs internal sources lists them in ``[policy] input_allow_networks`` (CIDR
strings); an address inside one of them is allowed whatever its kind. The list is empty by default.

A provider's result URI is the provider's, so whoever fetches it follows the same rule through
:func:`public_resolver` (a :data:`depin.fetch.Resolver`): a verifier, with ``[verifier]
result_allow_networks`` as its allowed networks, and a requester's client
(:meth:`depin.client.Client.download_result`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from depin.errors import ExecutionError
from depin.fetch import FetchError, FetchRefused, Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Named explicitly so the rule holds on every Python version (the ipaddress tables changed in 3.12/3.13).
REFUSED_NETWORKS: tuple[tuple[str, IPNetwork], ...] = tuple(
    (kind, ipaddress.ip_network(net))
    for kind, net in (
        ("this-network", "0.0.0.0/8"),
        ("private", "10.0.0.0/8"),
        ("shared (CGNAT)", "100.64.0.0/10"),
        ("loopback", "127.0.0.0/8"),
        ("link-local", "169.254.0.0/16"),
        ("private", "172.16.0.0/12"),
        ("protocol assignments", "192.0.0.0/24"),
        ("documentation", "192.0.2.0/24"),
        ("6to4 relay", "192.88.99.0/24"),
        ("private", "192.168.0.0/16"),
        ("benchmarking", "198.18.0.0/15"),
        ("documentation", "198.51.100.0/24"),
        ("documentation", "203.0.113.0/24"),
        ("multicast", "224.0.0.0/4"),
        ("reserved", "240.0.0.0/4"),
        ("unspecified", "::/128"),
        ("loopback", "::1/128"),
        ("IPv4-compatible", "::/96"),
        ("NAT64 local-use", "64:ff9b:1::/48"),
        ("discard-only", "100::/64"),
        ("IETF protocol assignments", "2001::/23"),
        ("documentation", "2001:db8::/32"),
        ("documentation", "3fff::/20"),
        ("unique-local", "fc00::/7"),
        ("link-local", "fe80::/10"),
        ("site-local", "fec0::/10"),
        ("multicast", "ff00::/8"),
    )
)

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
PROC_NET = Path("/proc/net")  # where local_networks reads the kernel's tables (this process's network namespace)
_RTF_LOCAL = 0x80000000  # an IPv6 route to this host itself (/proc/net/ipv6_route's flags)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(ExecutionError):
    """A host resolves (or a redirect leads) to an address the fetcher must not connect to."""

    def __init__(self, host: str, address: IPAddress, kind: str) -> None:
        super().__init__(f"{host} resolves to {address}, a {kind} address")
        self.host = host
        self.address = address
        self.kind = kind


class HostUnresolvable(ExecutionError):
    """The host name has no address (or the resolver failed)."""


def parse_networks(networks: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """CIDR strings (``"10.1.2.0/24"``, ``"fd00::/64"``, a bare address) as networks; raises
    ValueError for a malformed one or one with host bits set."""
    return tuple(n if isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else ipaddress.ip_network(str(n).strip()) for n in networks)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), else None.
    (Teredo, ``2001::/32``, lies in the refused ``2001::/23`` as a whole.)"""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _NAT64:  # :: and ::1 are not
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def _kind_by_properties(address: IPAddress) -> str | None:
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-global", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def refusal(address: IPAddress) -> str | None:
    """Why the fetcher must not connect to `address` (a short kind such as ``"loopback"`` or
    ``"IPv4-in-IPv6 loopback"``), or None for a public address. An IPv4-mapped address is judged as
    the IPv4 address it maps to."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # without a %scope
        inner = embedded_ipv4(address)
        inner_kind = refusal(inner) if inner is not None else None
        if inner_kind is not None:
            return f"IPv4-in-IPv6 {inner_kind}"
        if address.ipv4_mapped is not None:
            return None  # ::ffff:a.b.c.d reaches a.b.c.d, which is public
    explicit = next((kind for kind, net in REFUSED_NETWORKS if address in net), None)
    return explicit if explicit is not None else _kind_by_properties(address)


def is_allowed(address: IPAddress, allow: Sequence[IPNetwork]) -> bool:
    """True when `address` (an IPv4-mapped IPv6 address as its IPv4 form) lies in `allow`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in allow)


def local_networks() -> list[IPNetwork]:
    """What this host (its network namespace) takes as its own, read now from the kernel: every
    IPv4 route of type local (``/proc/net/fib_trie``: each interface address, and whole ranges
    routed to this host with ``ip route add local``) and every IPv6 one (``/proc/net/ipv6_route``,
    flag RTF_LOCAL, and ``/proc/net/if_inet6``). Empty where these files do not exist (not Linux)."""
    found: list[IPNetwork] = []
    with contextlib.suppress(OSError, ValueError):
        last = ""
        for line in (PROC_NET / "fib_trie").read_text().splitlines():
            line = line.strip()
            if line.startswith("|-- "):
                last = line[4:]
            elif line.startswith("/") and line.endswith(" host LOCAL") and last:
                found.append(ipaddress.ip_network(f"{last}/{line[1:].split()[0]}", strict=False))
    with contextlib.suppress(OSError, ValueError):
        for line in (PROC_NET / "ipv6_route").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 9 and int(fields[8], 16) & _RTF_LOCAL:
                found.append(ipaddress.ip_network((int(fields[0], 16), int(fields[1], 16)), strict=False))
    with contextlib.suppress(OSError, ValueError):
        for line in (PROC_NET / "if_inet6").read_text().splitlines():
            if fields := line.split():
                found.append(ipaddress.ip_network((int(fields[0], 16), 128)))
    return list(dict.fromkeys(found))


def _is_local(address: IPAddress, local: Sequence[IPNetwork]) -> bool:
    """True when `address`, or the IPv4 address it carries (mapped or 6to4: ``2002:a.b.c.d::`` goes
    through a relay to a.b.c.d, this host's own public address included), is one of `local`."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(ipaddress.IPv6Address(int(address)))) is not None:
        forms.append(inner)
    return any(form.version == net.version and form in net for form in forms for net in local)


def check_addresses(host: str, addresses: Sequence[IPAddress], allow: Sequence[IPNetwork] = ()) -> None:
    """Raises :class:`AddressRefused` unless *every* one of `addresses` is public or allowed. A public
    address that is this host's own (:func:`local_networks`, read at every check: addresses change)
    is refused too: a service bound to every interface answers there (found by review)."""
    local: list[IPNetwork] | None = None
    for address in addresses:
        if is_allowed(address, allow):
            continue
        kind = refusal(address)
        if kind is None:
            local = local_networks() if local is None else local
            kind = "this host's own" if _is_local(address, local) else None
        if kind is not None:
            raise AddressRefused(host, address, kind)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host` (a name or an IP literal in any form the
    C library accepts, such as ``2130706433``), in its order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OverflowError, ValueError) as exc:  # OverflowError: a port of 2**63 or more
        raise HostUnresolvable(f"cannot resolve {host}: {exc}") from exc
    out: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if address not in out:
            out.append(address)
    if not out:
        raise HostUnresolvable(f"{host} has no IPv4 or IPv6 address")
    return out


def resolve_checked(host: str, port: int, allow: Sequence[IPNetwork] = ()) -> IPAddress:
    """Resolves `host` once, checks every address (:func:`check_addresses`) and returns the one to
    connect to (the resolver's first). Raises :class:`HostUnresolvable` or :class:`AddressRefused`."""
    addresses = resolve(host, port)
    check_addresses(host, addresses, allow)
    return addresses[0]


def public_resolver(allow: Sequence[IPNetwork] = ()) -> Resolver:
    """A :data:`depin.fetch.Resolver` by this module's rule: a host whose addresses are all public
    (or inside `allow`) gives the first of them; any other is :class:`~depin.fetch.FetchRefused`,
    an unresolvable one :class:`~depin.fetch.FetchError`."""

    def resolve_public(host: str, port: int) -> str:
        try:
            return str(resolve_checked(host, port, allow))
        except AddressRefused as exc:
            raise FetchRefused(f"{host} resolves to a {exc.kind} address, which is not fetched from here") from None
        except HostUnresolvable as exc:
            raise FetchError(str(exc)) from None

    return resolve_public
