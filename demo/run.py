"""``panbroker demo``: the simulated federation plus the broker with its embedded defaults."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import click

from panbroker.app import build_broker
from broker.authz import Principal
from broker.seeding import import_registry
from broker import datalock
from panbroker.server import check_bind, run
from broker.settings import Settings, loopback_networks
from demo.federation import demo_federation, demo_registry, free_port

OIDC_DIR = Path(__file__).resolve().parent / "oidc"


def start_identity_provider(broker_url: str, secret: str) -> tuple[subprocess.Popen, str] | None:
    """The demo's identity provider: a real OpenID provider (npm oidc-provider) on loopback."""
    if shutil.which("node") is None or not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        print("(no Node.js or demo/oidc/node_modules: the demo runs without sign-in; `make demo` installs it)")
        return None
    idp_port = free_port()
    clients = [{"client_id": "panbroker-demo", "client_secret": secret,
                "redirect_uris": [f"{broker_url}/auth/callback"], "post_logout_redirect_uris": [f"{broker_url}/"],
                "response_types": ["code"], "grant_types": ["authorization_code"]}]
    process = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(idp_port), json.dumps(clients)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"http://127.0.0.1:{idp_port}"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", idp_port), timeout=0.2):
                return process, issuer
        except OSError:
            time.sleep(0.1)
    process.kill()
    return None


def run_demo(port: int, data_dir: Path) -> None:
    # refuse a second demo on this folder (or a busy port) before anything starts or changes
    datalock.hold(data_dir, f"panbroker demo on port {port}")
    check_bind("127.0.0.1", port)
    federation = demo_federation().start()
    base = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(16)
    idp = start_identity_provider(base, secret)
    issuers = [{"name": "demo-idp", "title": "Demo identity provider (simulated UmbrellaID)", "issuer": idp[1],
                "client_id": "panbroker-demo", "client_secret": secret,
                "scopes": "openid profile email entitlements",
                "admin_entitlements": ["urn:panbroker:role:admin"],
                "operator_entitlement_prefix": "urn:panbroker:role:operator:"}] if idp else []
    token_file = data_dir / "admin-token"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
        token_file.chmod(0o600)
    settings = Settings.from_env(
        data_dir=data_dir, admin_token=token_file.read_text().strip(), allowed_networks=loopback_networks(),
        health_interval_seconds=30, health_timeout_seconds=3.0, port=port,
        eosc_catalogue_url=federation.url("sim-eosc"), eosc_sync_interval_seconds=300,
        eosc_token_url=federation.url("sim-eosc") + "/token",
        public_url=base, oidc_issuers=json.dumps(issuers))
    broker = build_broker(settings)
    report = import_registry(broker.registry, Principal("demo", admin=True), demo_registry(federation))
    jobs = broker.harvest.run_all()  # so the first search already has every facility's datasets
    print(f"""
PaN Broker demo (simulated federation on loopback: {len(federation.systems)} systems; registry: \
{report.writes} writes; harvested {sum(j["imported"] for j in jobs)} datasets)

  Portal            {base}/
  API (Swagger UI)  {base}/api/v1/ui/
  Search            {base}/api/v1/datasets?q=lysozyme  (add &mode=live to ask the facilities)
  Services          {base}/api/v1/services
  EOSC catalogue    {base}/api/v1/catalogue?format=csv  (entries synced with a simulated EOSC catalogue)
  Health            {base}/api/v1/health
  Admin token       {token_file}  (curl -H "Authorization: Bearer $(cat {token_file})" ...)
  Sign in           {base}/auth/login/demo-idp?next=/api/v1/me  (a real OpenID login: any name and password;
                    names starting with "admin" are admins)

Health checks run every {settings.health_interval_seconds} s; sim-ess-jupyterhub is deliberately broken.
Stop with Ctrl-C.
""", flush=True)
    try:
        run(settings, "127.0.0.1", port, with_worker=True, broker=broker, workers=1)
    finally:
        federation.stop()
        if idp:
            idp[0].terminate()


@click.command()
@click.option("--port", type=int, default=8080, help="Port of the broker.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".demo"), help="Demo state folder.")
def command(port: int, data_dir: Path) -> None:
    """Start the simulated federation on loopback and the broker on http://127.0.0.1:PORT."""
    os.umask(0o077)
    run_demo(port, data_dir)
