"""Real OpenID providers (npm oidc-provider) for the login tests, and a scripted browser that signs in
through their development interactions."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from demo.federation import free_port
from tests.loopback import answers_within

import pytest
import requests

OIDC_DIR = Path(__file__).resolve().parent.parent / "demo" / "oidc"
BROKER = "http://127.0.0.1:8080"  # the broker's public URL in these tests (served in-process)
CLIENT_SECRET = "test-client-secret-d41d"


@dataclass
class RunningProvider:
    name: str
    issuer: str
    process: subprocess.Popen

    def config(self, **extra) -> dict:  # noqa: ANN003
        return {"name": self.name, "title": f"Provider {self.name}", "issuer": self.issuer, "client_id": "broker",
                "client_secret": CLIENT_SECRET, "scopes": "openid profile email entitlements offline_access",
                "admin_entitlements": ["urn:panbroker:role:admin"], **extra}



def start_provider(name: str, broker_url: str = BROKER) -> RunningProvider:
    """A provider on a free loopback port whose client ``broker`` redirects back to ``broker_url``."""
    if shutil.which("node") is None or not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        pytest.skip("Node.js or demo/oidc/node_modules is missing (make test runs npm ci): OIDC tests SKIPPED")
    port = free_port()
    clients = [{"client_id": "broker", "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{broker_url}/auth/callback"], "post_logout_redirect_uris": [f"{broker_url}/"],
                "response_types": ["code"], "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic"}]
    process = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(port), json.dumps(clients)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    issuer = f"http://127.0.0.1:{port}"
    if answers_within(f"{issuer}/.well-known/openid-configuration", 15):
        return RunningProvider(name, issuer, process)
    process.kill()
    raise RuntimeError(f"the OpenID provider did not start: {process.stdout.read()[:500]}")


class Browser:
    """Follows redirects between the broker (in-process test client) and a provider (real HTTP)."""

    def __init__(self, client) -> None:  # noqa: ANN001 - starlette TestClient
        self.client = client
        self.web = requests.Session()

    def go(self, url: str, login: str | None = None, stop_at_callback: bool = False):  # noqa: ANN201
        for _ in range(20):
            if url.startswith(BROKER) or url.startswith("/"):
                path = url.removeprefix(BROKER)
                if stop_at_callback and path.startswith("/auth/callback"):
                    return path
                response = self.client.get(path, follow_redirects=False)
                if response.status_code in (301, 302, 303):
                    url = response.headers["location"]
                    continue
                return response
            response = self.web.get(url, allow_redirects=False, timeout=5)
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["location"])
                continue
            form = re.search(r'action="([^"]+)"', response.text)
            if response.status_code == 200 and form and 'value="login"' in response.text:
                response = self.web.post(urljoin(url, form.group(1)), timeout=5, allow_redirects=False,
                                         data={"prompt": "login", "login": login, "password": "any"})
            elif response.status_code == 200 and form:
                response = self.web.post(urljoin(url, form.group(1)), timeout=5, allow_redirects=False,
                                         data={"prompt": "consent"})
            else:
                raise AssertionError(f"unexpected page at {url}: {response.status_code} {response.text[:300]}")
            url = urljoin(url, response.headers["location"])
        raise AssertionError("too many redirects")

    def sign_in(self, issuer: str, login: str, next_url: str = "/", path: str = "/auth/login/"):  # noqa: ANN201
        start = self.client.get(f"{path}{issuer}", params={"next": next_url}, follow_redirects=False)
        assert start.status_code == 302, start.text
        return self.go(start.headers["location"], login)

    def csrf(self) -> str:
        """The CSRF token a page of the broker carries for this browser's session."""
        page = self.client.get("/account")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, f"no CSRF token on /account ({page.status_code})"
        return found.group(1)

    def start_link(self, issuer: str, next_url: str = "/account"):  # noqa: ANN201
        """Open the link confirmation page and confirm it; the broker's answer (a redirect)."""
        confirm = self.client.get(f"/auth/link/{issuer}", params={"next": next_url})
        assert confirm.status_code == 200, confirm.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text).group(1)
        return self.client.post(f"/auth/link/{issuer}", data={"csrf_token": token, "next": next_url},
                                follow_redirects=False)

    def link(self, issuer: str, login: str, next_url: str = "/account"):  # noqa: ANN201
        started = self.start_link(issuer, next_url)
        assert started.status_code == 302, started.text
        return self.go(started.headers["location"], login)

    def logout(self):  # noqa: ANN201
        return self.client.post("/auth/logout", data={"csrf_token": self.csrf()}, follow_redirects=False)

    def callback_url(self, issuer: str, login: str) -> str:
        """Sign in at the provider but stop before the broker's callback; return its path and query."""
        start = self.client.get(f"/auth/login/{issuer}", follow_redirects=False)
        return self.go(start.headers["location"], login, stop_at_callback=True)


def query_of(path: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in urlsplit(path).query.split("&") if "=" in part)
