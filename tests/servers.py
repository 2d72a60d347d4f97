"""The service's real processes for tests, on loopback ports the kernel picks."""

from deploy.stack import Gunicorn


def start_service(database_url, port=0, **environment):
    """gunicorn with the shipped config and two workers, returned once /healthz answers."""
    server = Gunicorn(
        {
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            **environment,
        },
        port=port,
    )
    try:
        return server.wait_until_serving()
    except BaseException:
        server.stop()
        raise
