"""API tokens: issued by the CLI, stored only as SHA-256 hashes."""

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from app.models import ApiToken

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Caller:
    project_id: str | None
    roles: frozenset

    @property
    def is_admin(self):
        return ADMIN_ROLE in self.roles


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session, *, project_id, roles, ttl_seconds):
    """Store a new token's hash and return the token itself (shown only once)."""
    token = secrets.token_urlsafe(32)
    expires_at = None
    if ttl_seconds:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_seconds)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            project_id=project_id,
            roles=sorted(set(roles)),
            expires_at=expires_at,
        )
    )
    session.commit()
    return token


def find_caller(session, token):
    """Return the Caller a live token stands for, or None (unknown or expired)."""
    row = session.execute(
        sa.select(ApiToken.project_id, ApiToken.roles).where(
            ApiToken.token_hash == hash_token(token),
            sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > sa.func.now()),
        )
    ).first()
    if row is None:
        return None
    return Caller(project_id=row.project_id, roles=frozenset(row.roles))
