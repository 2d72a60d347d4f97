"""Keystone's WSGI app for gunicorn (run in Keystone's virtualenv, not the project's).

keystone.wsgi.api builds the app at import, and its oslo.config parses
sys.argv: under gunicorn that is gunicorn's command line, which Keystone
rejects, and every worker dies. So it is imported with an empty one.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402, F401
