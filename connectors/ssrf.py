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


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound calls may reach."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    def is_allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed_networks):
            return True
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
