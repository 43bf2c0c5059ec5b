"""PaN Broker: federated dataset search and analysis launch for photon and neutron facilities."""
from setuptools import find_packages, setup

BUILTIN_CONNECTORS = [
    "jupyterhub = connectors.jupyterhub:JupyterHubConnector",
    "visa = connectors.visa:VisaConnector",
    "binderhub = connectors.binderhub:BinderHubConnector",
    "remote-desktop = connectors.desktop:RemoteDesktopConnector",
    "panosc-search-api = connectors.panosc_search:PanoscSearchConnector",
    "scicat = connectors.scicat:SciCatConnector",
    "oai-pmh = connectors.oai_pmh:OaiPmhConnector",
    "ood = connectors.ood:OodConnector",
]

setup(
    name="panbroker",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["panmodel*", "panbroker*", "broker*", "connectors*", "registry*", "web*", "openapi*",
                                    "demo*"]),
    package_data={
        "openapi": ["*.yaml"],
        "panmodel": ["data/*.json"],
        "registry": ["seed/*.yaml", "vocabularies/eosc/*.json", "migrations/*.py", "migrations/*.mako",
                     "migrations/versions/*.py"],
        "web": ["templates/*.html", "static/*"],
        "demo": ["oidc/package.json", "oidc/package-lock.json", "oidc/provider.mjs"],
    },
    install_requires=[
        "flask>=3.0",
        "flask-compress>=1.15",
        "connexion[flask,swagger-ui,uvicorn]>=3.1",
        "requests>=2.32",
        "urllib3>=2.2",
        "SQLAlchemy>=2.0.30",
        "alembic>=1.13",
        "marshmallow>=3.20",
        "apscheduler>=3.10,<4",
        "pybreaker>=1.2",
        "cryptography>=42",
        "PyYAML>=6.0",
        "psycopg[binary]>=3.1",
        "tantivy>=0.25",
        "defusedxml>=0.7",
        "authlib>=1.3",
        "pint>=0.24",
        "prometheus_client>=0.20",
        # harvest pages decoded straight into typed records (the hot path of a harvest of millions)
        "msgspec>=0.19",
    ],
    extras_require={
        "test": ["pytest>=8", "responses>=0.25", "httpx>=0.27", "pytest-timeout>=2.3", "schemathesis>=4.0",
                 "elasticsearch>=8.13,<10", "jupyterhub>=5.2", "jupyter_server>=2.14", "playwright>=1.50",
                 # from 4.24 the format-nongpl extra that jupyter-events asks for brings rfc3987-syntax, which
                 # builds a parser for 3 s each time a test hub's single-user server starts
                 "jsonschema>=4.18,<4.24",
                 # ESRF's spawner (Slurm jobs through batchspawner), for the moss+Slurm launch tests
                 "jupyterhub-moss>=10.1", "batchspawner>=1.3",
                 # XML Schema validation of the OAI-PMH provider's answers; a loopback SMTP server for notifications
                 "lxml>=5.2", "aiosmtpd>=1.4",
                 # the house rules `make test` runs: lint, both cores, a coverage floor
                 "ruff>=0.17", "pytest-xdist>=3.8", "pytest-cov>=7.0",
                 # the layering contracts in .importlinter, checked by `make test`
                 "import-linter>=2.1",
                 # process trees (a harvest's mapping processes) and their memory, in tests and benchmarks
                 "psutil>=7.0"],
        "elasticsearch": ["elasticsearch>=8.13,<10"],
    },
    entry_points={
        "console_scripts": ["panbroker = panbroker.cli:main"],
        # `panbroker demo`: the CLI reaches the demo only through this entry point
        "panbroker.commands": ["demo = demo.run:command"],
        "panbroker.connectors": BUILTIN_CONNECTORS,
    },
)
