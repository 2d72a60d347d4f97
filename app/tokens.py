"""API tokens: issued by the CLI, stored only as SHA-256 hashes."""

import dataclasses
import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from app.db import transaction
from app.db.reads import compiled
from app.models import ApiToken

# `tokens list` shows this much of a token's SHA-256 as its id: enough to be
# unique among a service's tokens, and useless for guessing the token.
TOKEN_ID_LENGTH = 12


@dataclass(frozen=True)
class Caller:
    """Who is calling: a project (or none), roles, whether the policy makes it an admin
    (app/policy.py), and the key its reads keep to.

    `affinity` (the token's digest) keeps a caller's reads on one replica
    (app/db/reads.py), so consecutive pages come from one copy of the catalogue.
    `trusted_until` (a time.time()) is how long the caller may be taken
    as it is without asking again (TokenCache), so answers given again
    (app/web/answers.py) are not given past a revocation this service would see.
    """

    project_id: str | None
    roles: frozenset
    affinity: str = ""
    is_admin: bool = False
    trusted_until: float = 0.0


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session, *, project_id, roles, ttl_seconds):
    """Store a new token's hash and return the token itself (shown only once)."""
    # Hex: a token never starts with "-", which a command line would take for an option.
    token = secrets.token_hex(32)
    expires_at = None
    if ttl_seconds:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_seconds)
    with transaction(session):
        session.add(
            ApiToken(
                token_hash=hash_token(token),
                project_id=project_id,
                roles=sorted(set(roles)),
                expires_at=expires_at,
            )
        )
    return token


class AmbiguousTokenId(ValueError):
    """A token id (a prefix of the hash) matches several tokens."""


def revoke_tokens(session, *, token=None, token_id=None, project_id=None):
    """Delete one token (by value or by id) or every token of a project; return how many.

    :raises AmbiguousTokenId: `token_id` matches more than one token (none is revoked).
    """
    if token is not None:
        condition = ApiToken.token_hash == hash_token(token)
    elif token_id is not None:
        if len(token_id) < TOKEN_ID_LENGTH:
            return 0
        # An id is a prefix of the hash: it must name one token only.
        condition = ApiToken.token_hash.startswith(token_id, autoescape=True)
        matching = session.scalar(sa.select(sa.func.count()).where(condition))
        if matching > 1:
            raise AmbiguousTokenId(
                f"id {token_id} matches {matching} tokens: give more characters of it"
            )
    else:
        condition = ApiToken.project_id == project_id
    with transaction(session):
        return session.execute(sa.delete(ApiToken).where(condition)).rowcount


@dataclass(frozen=True)
class TokenListing:
    id: str
    project_id: str | None
    roles: list
    created_at: dt.datetime
    expires_at: dt.datetime | None
    expired: bool


def list_tokens(session):
    """Every token, oldest first, identified by the start of its hash (never the token)."""
    rows = session.execute(
        sa.select(
            ApiToken.token_hash,
            ApiToken.project_id,
            ApiToken.roles,
            ApiToken.created_at,
            ApiToken.expires_at,
            sa.func.coalesce(ApiToken.expires_at <= sa.func.now(), False),
        ).order_by(ApiToken.created_at, ApiToken.token_hash)
    )
    return [TokenListing(digest[:TOKEN_ID_LENGTH], *rest) for digest, *rest in rows]


def purge_expired_tokens(session):
    """Delete the tokens past their expiry; return how many."""
    with transaction(session):
        purged = session.execute(sa.delete(ApiToken).where(ApiToken.expires_at <= sa.func.now()))
    return purged.rowcount


def find_caller(reader, digest):
    """Return (Caller, expires_at) for a live token's digest, or None (unknown or expired)."""
    row = reader.first(*_CALLER.with_values({"digest": digest}))
    if row is None:
        return None
    project_id, roles, expires_at = row
    # A token issued for project "" before 1.3 refused it sees what a token without one sees.
    caller = Caller(project_id=project_id or None, roles=frozenset(roles), affinity=digest)
    return caller, expires_at


_CALLER = compiled(
    sa.select(ApiToken.project_id, ApiToken.roles, ApiToken.expires_at).where(
        ApiToken.token_hash == sa.bindparam("digest"),
        sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > sa.func.now()),
    )
)


class TokenCache:
    """The callers of recently seen tokens, for `seconds` (0 turns it off).

    Saves a database round trip per request. A cached token still stops
    working when it expires; a revoked one stops within `seconds`. Unknown
    tokens are never cached, so guessing cannot fill the cache; past
    `max_entries`, the oldest entry makes room.
    """

    def __init__(self, seconds, max_entries=10_000, clock=time.time):
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries = {}

    def __len__(self):
        return len(self._entries)

    def get(self, digest):
        entry = self._entries.get(digest)
        if entry is None:
            return None
        caller, fresh_until = entry
        if self.clock() >= fresh_until:
            self._entries.pop(digest, None)
            return None
        return caller

    def put(self, digest, caller, expires_at):
        """Keep `caller`; return it as kept (its trusted_until the time it stays cached)."""
        if not self.seconds:
            return caller
        fresh_until = self.clock() + self.seconds
        if expires_at is not None:
            fresh_until = min(fresh_until, expires_at.timestamp())
        caller = dataclasses.replace(caller, trusted_until=fresh_until)
        self._entries.pop(digest, None)
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = (caller, fresh_until)
        return caller
