"""Who is calling: X-Auth-Token checked against the token table, or Keystone's headers."""

import dataclasses
import math

from flask import abort, current_app, g, request

from app import db as database
from app import policy
from app.tokens import Caller, TokenCache, find_caller, hash_token


class IdentityUnavailable(Exception):
    """Keystone could not be asked whether the token is valid (the answer is a 503)."""


def init_app(app):
    if app.config["AUTH_STRATEGY"] == "keystone":
        from app import keystone

        # The middleware validates and annotates; this module decides, so
        # health checks and the versions document stay open.
        app.wsgi_app = keystone.wrap(app.wsgi_app, app.extensions["conf"])
    app.extensions["token_cache"] = TokenCache(app.config["TOKEN_CACHE_SECONDS"])


def authenticate():
    """Set g.caller; the images blueprint runs this before each of its views.

    Unknown paths and wrong methods never reach a view, so they answer 404
    and 405 whether or not a token came: those answers depend only on the
    public contract, never on the catalogue.

    :raises 401: no token, or one that is unknown or expired.
    :raises 403: a valid token with none of the roles allowed to list images.
    :raises IdentityUnavailable: Keystone could not be reached.
    """
    if current_app.config["AUTH_STRATEGY"] == "keystone":
        caller = _caller_from_keystone_headers()
    else:
        caller = _caller_from_token_table()
    if caller is None:
        abort(401, description="The request you have made requires authentication.")
    if not caller.roles & set(current_app.config["ALLOWED_ROLES"]):
        abort(403, description="Access was denied to this resource.")
    g.caller = caller


def _caller_from_token_table():
    token = request.headers.get("X-Auth-Token")
    if not token:
        return None
    digest = hash_token(token)
    cache = current_app.extensions["token_cache"]
    caller = cache.get(digest)
    if caller is None:
        found = database.read(lambda reader: find_caller(reader, digest), affinity=digest)
        if found is None:
            return None
        caller, expires_at = found
        caller = cache.put(digest, _with_policy(caller), expires_at)
    return caller


def _caller_from_keystone_headers():
    from app.keystone import IDENTITY_UNREACHABLE

    if request.environ.get(IDENTITY_UNREACHABLE):
        raise IdentityUnavailable
    # keystonemiddleware's auth_token (with delay_auth_decision) removes any
    # identity headers the client sent and sets these after validating.
    if request.headers.get("X-Identity-Status") != "Confirmed":
        return None
    roles = request.headers.get("X-Roles", "")
    caller = Caller(
        project_id=request.headers.get("X-Project-Id") or None,
        roles=frozenset(role.strip() for role in roles.split(",") if role.strip()),
        affinity=hash_token(request.headers.get("X-Auth-Token", "")),
        # The middleware in front validates every request's token: these
        # headers are this request's own answer.
        trusted_until=math.inf,
    )
    return _with_policy(caller)


def _with_policy(caller):
    """`caller`, an admin if the policy's context_is_admin rule says so."""
    enforcer = current_app.extensions["policy"]
    is_admin = policy.is_admin(enforcer, caller.project_id, caller.roles)
    return dataclasses.replace(caller, is_admin=is_admin)
