"""Download links: the export's id and an expiry, signed with HMAC-SHA256.

The signature is the permission: a link can be handed to a CRM's importer, which has no API
key, and works until it expires. Changing the id or the expiry breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime

from services.kernel.clock import utcnow
from services.kernel.settings import Settings
from services.marketing.exports.errors import ExportLinkExpired, ExportLinkInvalid

# Keeps a key derived from the JWT secret from ever signing what a token signature means.
_DERIVATION_LABEL = b"kinfolk marketing export links v1"


def _signature(key: bytes, export_id: uuid.UUID, expires: int) -> str:
    message = f"{export_id}.{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _keys(settings: Settings) -> list[bytes]:
    """The signing key first, then those a rotation still accepts."""
    return settings.verifying_keys(
        settings.export_link_secret, settings.export_link_accepted_secrets, _DERIVATION_LABEL
    )


def sign(settings: Settings, export_id: uuid.UUID, now: datetime | None = None) -> tuple[int, str]:
    """(expires, signature) for a link valid `export_link_seconds` from now."""
    expires = int((now or utcnow()).timestamp()) + settings.export_link_seconds
    return expires, _signature(_keys(settings)[0], export_id, expires)


def verify(settings: Settings, export_id: uuid.UUID, expires: int, signature: str) -> None:
    """Raises ExportLinkInvalid for a link this server did not make as it is, ExportLinkExpired
    for one past its time. The signature is checked first, so an expired link's answer cannot
    be had for a made-up one."""
    if not any(
        hmac.compare_digest(_signature(key, export_id, expires).encode(), signature.encode())
        for key in _keys(settings)
    ):
        raise ExportLinkInvalid()
    if utcnow().timestamp() >= expires:
        raise ExportLinkExpired()
