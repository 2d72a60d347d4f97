"""The service's real processes for tests, on free loopback ports."""

import socket

from deploy.stack import Nginx, start_gunicorn, stop, wait_until_answering

__all__ = ["Nginx", "free_port", "start_service", "stop", "wait_until_healthy"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(database_url, port, **environment):
    return start_gunicorn(
        environment={
            "DATABASE_URL": database_url,
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            **environment,
        }
    )


def wait_until_healthy(base_url, process):
    wait_until_answering(f"{base_url}/healthz", process)
