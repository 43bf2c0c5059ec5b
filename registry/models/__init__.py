"""The store of record, one module per domain: the registry itself, harvests, people and sign-in,
launches. Schema changes go through the Alembic migrations in registry/migrations."""
from registry.models.base import ServiceKind, SearchKind, LaunchMode, Lifecycle, EoscStatus, HealthStatus, TargetType, Base, as_utc, utcnow  # noqa: F401
from registry.models.registry import Facility, ComputeService, SearchEndpoint, EoscEntry, HealthCheck, AuditEvent, EoscSyncEvent  # noqa: F401
from registry.models.harvest import HarvestState, HarvestStage, HarvestJob, HarvestError, HarvestCheckpoint  # noqa: F401
from registry.models.people import Role, Person, Identity, RoleGrant, ApiToken, LoginTransaction, WebSession, UserToken, NotificationSettings  # noqa: F401
from registry.models.launch import LaunchState, Launch, LaunchEvent, FINAL_LAUNCH_STATES  # noqa: F401
from registry.models.oai import OaiRecord  # noqa: F401
