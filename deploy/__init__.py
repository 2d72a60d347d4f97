"""What starts the service's processes from this checkout, for development, tests and drills.

Nothing here is installed with the service: `app/` is the service (and
never imports this package); `make run`, `make cluster`, the benchmark and
the tests start gunicorn, nginx, PgBouncer and PostgreSQL through it.
"""

from pathlib import Path

# The checkout this package belongs to: where `wsgi.py` is.
CHECKOUT = Path(__file__).resolve().parent.parent
