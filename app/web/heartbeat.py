"""A long request tells gunicorn's arbiter that its worker is alive.

A sync worker serves one request at a time and shows it is alive between
requests; the arbiter kills one silent for `timeout` seconds (30, hung or
not). An upload or download of an image takes minutes: each piece moved
is a sign of life instead (gunicorn_conf.py's post_fork attaches the worker).
"""

_worker = None


def attach(worker):
    global _worker
    _worker = worker


def beat():
    """Tell the arbiter this worker is alive (no-op outside gunicorn)."""
    if _worker is not None:
        _worker.notify()
