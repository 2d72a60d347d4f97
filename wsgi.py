import sys

from app import create_app
from app.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as problem:
    # `flask --app wsgi ...` then says what is wrong in one line, not a traceback.
    sys.exit(f"image-catalogue: {problem}")
