"""gunicorn settings for the image catalogue (`gunicorn -c deploy/gunicorn.conf.py wsgi:app`).

HOST, PORT and WEB_CONCURRENCY override the bind address and worker count.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"
# gunicorn's guide: about two workers per core, plus one.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
# Behind nginx, which buffers slow clients; a request that takes longer is stuck.
timeout = 30
graceful_timeout = 20
keepalive = 5
# gunicorn 25+ opens a control socket at ~/.gunicorn/gunicorn.ctl, which two
# instances on one machine would fight over; the service does not use it.
control_socket_disable = True
accesslog = "-"
