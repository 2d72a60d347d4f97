"""AUTH_STRATEGY=keystone: keystonemiddleware's auth_token in front of the app.

With `delay_auth_decision` the middleware validates tokens and annotates the
request, and app/auth.py decides. Two things the stock middleware gets wrong
for this service are handled here: missing settings (every request would get
its HTML 500) refuse start-up instead, and a Keystone it cannot reach is
reported to the app (which answers 503) instead of looking like a bad token.
"""

import contextvars

from keystoneauth1 import exceptions as keystoneauth_errors
from keystoneauth1 import loading
from keystonemiddleware.auth_token import AuthProtocol
from keystonemiddleware.auth_token import _exceptions as middleware_errors

# The request environ key that tells the app Keystone could not be asked.
IDENTITY_UNREACHABLE = "image_catalogue.identity_unreachable"
# The failures keystonemiddleware itself treats as "Keystone unavailable".
_UNREACHABLE_ERRORS = (
    keystoneauth_errors.ConnectFailure,
    keystoneauth_errors.DiscoveryFailure,
    keystoneauth_errors.RequestTimeout,
    middleware_errors.ServiceError,
)
_unreachable = contextvars.ContextVar("identity_unreachable", default=False)


def wrap(wsgi_app, options):
    """Return `wsgi_app` behind auth_token configured with `options` (see settings_problem)."""
    return _AuthProtocol(wsgi_app, {**options, "delay_auth_decision": True})


def settings_problem(options):
    """Return which KEYSTONE_AUTHTOKEN_* settings auth_token lacks, in one line, or None."""
    missing = []
    if not (options.get("www_authenticate_uri") or options.get("auth_uri")):
        missing.append("www_authenticate_uri")
    auth_type = options.get("auth_type")
    if not auth_type:
        missing.append("auth_type")
    else:
        try:
            plugin_options = loading.get_plugin_loader(auth_type).get_options()
        except keystoneauth_errors.NoMatchingPlugin:
            return f"KEYSTONE_AUTHTOKEN_AUTH_TYPE names no keystoneauth plugin: {auth_type!r}"
        missing += [
            option.dest
            for option in plugin_options
            if option.required and not options.get(option.dest)
        ]
    if not missing:
        return None
    names = ", ".join(f"KEYSTONE_AUTHTOKEN_{name.upper()}" for name in missing)
    return f"AUTH_STRATEGY=keystone needs {names}"


class _AuthProtocol(AuthProtocol):
    def process_request(self, request):
        reset = _unreachable.set(False)
        try:
            response = super().process_request(request)
            if _unreachable.get():
                request.environ[IDENTITY_UNREACHABLE] = True
            return response
        finally:
            _unreachable.reset(reset)

    def fetch_token(self, token, **kwargs):
        try:
            return super().fetch_token(token, **kwargs)
        except middleware_errors.InvalidToken as error:
            # With delay_auth_decision the middleware turns "unreachable"
            # into InvalidToken; the original failure is its context.
            if isinstance(error.__context__, _UNREACHABLE_ERRORS):
                _unreachable.set(True)
            raise
