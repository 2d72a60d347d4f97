"""`make run`: migrate, load the demo catalogue, issue a token, serve with gunicorn.

Run as `python -m deploy.localserver`. With DATABASE_URL=embedded, the
embedded PostgreSQL starts with this process and stops when it ends (Ctrl-C
or SIGTERM).
"""

import ctypes
import signal
import sys
from pathlib import Path

import flask_migrate

from app import create_app
from app.config import config_file, load, one_line_exit, settings
from app.db import db
from app.loading import jsonl, upsert
from app.serving import address
from app.tokens import issue_token
from deploy.gunicorn_process import start_gunicorn
from deploy.processes import ProcessFailed, answers, wait_until_answering

DEMO_CATALOGUE = Path(__file__).resolve().parent / "demo-images.jsonl"
DEMO_PROJECT = "demo-project"


def main():
    with one_line_exit():
        conf = load(config_file())
        values = settings(conf)
    # Where `image-catalogue serve` will bind: [DEFAULT] bind_host, bind_port (HOST, PORT).
    base_url = f"http://{address(values['HOST'], values['PORT'])}"
    if answers(base_url):
        sys.exit(
            f"Something already answers on {base_url}/ (another make run?); stop it or set PORT."
        )
    with one_line_exit():
        app = create_app(conf)
    with app.app_context():
        flask_migrate.upgrade()
        if upsert.is_empty(db.session):
            with DEMO_CATALOGUE.open("rb") as lines:
                summary = upsert.load(db.session, jsonl.parse_lines(lines), source="import")
            print(f"Loaded the demo catalogue: {summary.inserted} images.", file=sys.stderr)
        token = issue_token(
            db.session, project_id=DEMO_PROJECT, roles=["member"], ttl_seconds=86400
        )
        db.engine.dispose()
    sys.exit(_serve(app.config["SQLALCHEMY_DATABASE_URI"], base_url, token))


def _serve(database_url, base_url, token):
    gunicorn = start_gunicorn({"DATABASE_URL": database_url}, preexec_fn=_stop_when_parent_dies)
    signal.signal(signal.SIGTERM, lambda signum, frame: gunicorn.terminate())
    example = f"{base_url}/v1.1/images/detail?disk_format=qcow2"
    try:
        wait_until_answering(
            example,
            gunicorn,
            accept=lambda response: response.status_code == 200,
            headers={"X-Auth-Token": token},
        )
        print(
            f"\nThe image catalogue is serving on {base_url}/ (Ctrl-C stops it). Try:\n\n"
            f"  curl -s -H 'X-Auth-Token: {token}' '{example}'\n",
            flush=True,
        )
        return gunicorn.wait()
    except ProcessFailed as error:
        gunicorn.terminate()
        gunicorn.wait()
        return f"gunicorn did not start serving: {error}"
    except KeyboardInterrupt:
        # The terminal sent SIGINT to gunicorn as well; let it finish.
        return gunicorn.wait()


def _stop_when_parent_dies():
    # Linux prctl(PR_SET_PDEATHSIG, SIGTERM): if this launcher is killed
    # outright, gunicorn is told to stop instead of serving on, orphaned.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


if __name__ == "__main__":
    main()
