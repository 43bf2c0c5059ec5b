"""``panbroker demo``: the simulated federation plus the broker with its embedded defaults."""
from __future__ import annotations

import secrets
from pathlib import Path

from broker.app import build_broker
from broker.authz import Principal
from broker.seeding import import_registry
from broker.server import run
from broker.settings import Settings, loopback_networks
from demo.federation import demo_federation, demo_registry


def run_demo(port: int, data_dir: Path) -> None:
    federation = demo_federation().start()
    token_file = data_dir / "admin-token"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
        token_file.chmod(0o600)
    settings = Settings.from_env(
        data_dir=data_dir, admin_token=token_file.read_text().strip(), allowed_networks=loopback_networks(),
        health_interval_seconds=30, health_timeout_seconds=3.0, port=port,
        eosc_catalogue_url=federation.url("sim-eosc"), eosc_sync_interval_seconds=300)
    broker = build_broker(settings)
    report = import_registry(broker.registry, Principal("demo", admin=True), demo_registry(federation))
    jobs = broker.harvest.run_all()  # so the first search already has every facility's datasets
    base = f"http://127.0.0.1:{port}"
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

Health checks run every {settings.health_interval_seconds} s; sim-ess-jupyterhub is deliberately broken.
Stop with Ctrl-C.
""", flush=True)
    try:
        run(settings, "127.0.0.1", port, with_worker=True, broker=broker)
    finally:
        federation.stop()
