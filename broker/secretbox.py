"""Encryption of stored secrets (service API credentials) with Fernet, keys rotatable (MultiFernet)."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from panmodel.errors import ConfigurationError

KEY_FILE = "encryption.key"


class SecretBox:
    """Encrypts with the newest key and decrypts with any configured key."""

    def __init__(self, keys: list[bytes]):
        if not keys:
            raise ConfigurationError("no encryption key configured")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise ConfigurationError(f"PANBROKER_ENCRYPTION_KEYS: {exc}") from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("a stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        return self._fernet.rotate(token.encode()).decode()

    @classmethod
    def from_settings(cls, encryption_keys: str, data_dir: Path) -> "SecretBox":
        """Keys from the setting, else from (or newly into) a 0600 key file in the data dir."""
        if encryption_keys:
            return cls([k.strip().encode() for k in encryption_keys.split(",") if k.strip()])
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls([path.read_bytes().strip()])
