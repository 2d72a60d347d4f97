"""The WSGI app for a server other than `image-catalogue serve` (uWSGI, mod_wsgi): wsgi:app."""

from app import create_app
from app.config import one_line_exit

# A wrong setting is one line in the server's log, not a traceback.
with one_line_exit():
    app = create_app()
