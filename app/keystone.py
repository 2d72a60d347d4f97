"""auth_strategy = keystone: keystonemiddleware's auth_token in front of the app.

With `delay_auth_decision` the middleware validates tokens and annotates the
request, and app/auth.py decides. It reads [keystone_authtoken] from the
service's own configuration (app/config), as Glance's reads glance-api.conf.
Two things the stock middleware gets wrong for this service are handled:
missing settings (every request would get its HTML 500) refuse start-up
instead (app/config/checks.py), and a Keystone it cannot reach is reported
to the app (which answers 503) instead of looking like a bad token.
"""

import contextvars

from keystoneauth1 import exceptions as keystoneauth_errors
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


def wrap(wsgi_app, conf):
    """Return `wsgi_app` behind auth_token, configured by `conf`'s [keystone_authtoken]."""
    return _AuthProtocol(wsgi_app, {"oslo_config_config": conf, "delay_auth_decision": True})


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
