"""The registry: the broker's store of record (facilities, services, search endpoints, EOSC entries)."""
