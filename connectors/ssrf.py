"""SSRF guard for operator-registered URLs.

Addresses are checked when the connection is made, on the address actually dialled, so a name that
resolves to a public address at registration and to a private one later (DNS rebinding) is still
refused. Private, loopback, link-local, multicast and reserved addresses are refused unless a network
containing them is allowed by settings (the demo and the tests allow loopback explicitly).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from connectors.errors import AddressBlocked, UpstreamUnavailable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOWED_SCHEMES = frozenset({"http", "https"})
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: any RFC 6052 prefix length inside it
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated "::a.b.c.d" (RFC 4291 2.5.5.1)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address may stand for (mapped, compatible, NAT64, 6to4, Teredo)."""
    value = int(ip)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return [ip.teredo[1]]  # the client's address (the server's is public by construction)
    if ip in NAT64_WELL_KNOWN or (ip in IPV4_COMPATIBLE and value > 1):
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF)]
    if ip in NAT64_LOCAL:
        # RFC 6052 2.2: the address sits after the prefix, skipping bits 64-71; try every prefix length
        octets = ip.packed
        placements = {48: octets[6:8] + octets[9:11], 56: octets[7:8] + octets[9:12], 64: octets[9:13],
                      96: octets[12:16]}
        return [ipaddress.IPv4Address(raw) for raw in placements.values()]
    return []


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound calls may reach."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    def is_allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in network for network in self.allowed_networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            inner = embedded_ipv4(ip)
            if inner:  # judged by the address it reaches: 64:ff9b::a9fe:a9fe is 169.254.169.254
                return all(self.is_allowed(str(address)) for address in inner)
        return ip.is_global and not ip.is_multicast

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, all of which must be allowed; raises ``AddressBlocked``."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UpstreamUnavailable(f"{host} does not resolve: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        refused = [a for a in addresses if not self.is_allowed(a)]
        if refused:
            raise AddressBlocked(
                f"{host} resolves to {', '.join(refused)}, which the SSRF policy does not allow "
                "(private, loopback, link-local or reserved; see PANBROKER_ALLOWED_NETWORKS)"
            )
        return addresses

    def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host resolves to a refused address."""
        parts = urlsplit(url)
        if parts.scheme not in ALLOWED_SCHEMES:
            raise AddressBlocked(f"scheme {parts.scheme!r} is not allowed; use http or https")
        if not parts.hostname:
            raise AddressBlocked("the URL has no host")
        self.resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
