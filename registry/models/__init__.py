"""The store of record, one module per domain: the registry itself, harvests, people and sign-in,
launches. Schema changes go through the Alembic migrations in registry/migrations."""
from registry.models.base import Base  # noqa: F401
from registry.models.registry import (  # noqa: F401
    Facility, ComputeService, SearchEndpoint, EoscEntry, HealthCheck, AuditEvent, EoscSyncEvent, RegistryStamp)
from registry.models.harvest import HarvestJob, HarvestError, HarvestCheckpoint  # noqa: F401
from registry.models.people import (  # noqa: F401
    Role, Person, Identity, RoleGrant, ApiToken, LoginTransaction, WebSession, UserToken, NotificationSettings)
from registry.models.launch import Launch, LaunchEvent, BasketItem  # noqa: F401
from registry.models.oai import OaiRecord  # noqa: F401
from registry.models.coordination import ScheduledRun  # noqa: F401
