"""`python -m app.serving.probe`: exit 0 if this host's service answers /healthcheck, else 1.

The container image's HEALTHCHECK: it asks the address and port the configuration binds.
"""

import sys
import urllib.request

from app.config import ConfigurationError, config_file, load, settings
from app.serving import address

EVERY_ADDRESS = ("0.0.0.0", "::")


def main():
    try:
        values = settings(load(config_file()))
        host = "127.0.0.1" if values["HOST"] in EVERY_ADDRESS else values["HOST"]
        url = f"http://{address(host, values['PORT'])}/healthcheck"
        with urllib.request.urlopen(url, timeout=3) as answer:
            return 0 if answer.status == 200 else 1
    except (ConfigurationError, OSError) as problem:
        print(f"image-catalogue is not healthy: {problem}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
