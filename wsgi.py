"""The WSGI app for a server other than `image-catalogue serve` (uWSGI, mod_wsgi): wsgi:app."""

import sys

from app import create_app
from app.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as problem:
    # The server's log then says what is wrong in one line, not a traceback.
    sys.exit(f"image-catalogue: {problem}")
