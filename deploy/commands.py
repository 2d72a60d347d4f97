"""The service's command line, as a child process runs it from this checkout."""

import sys


def catalogue_command(*arguments):
    """`flask --app wsgi ARGUMENTS...` (db, images, tokens) for subprocess, run in the checkout."""
    return [sys.executable, "-m", "flask", "--app", "wsgi", *arguments]


def follow_command(*, interval, overlap, reconcile_every):
    """`images sync-glance --follow` as a child process (GLANCE_DATABASE_URL names the source)."""
    return catalogue_command(
        *("images", "sync-glance", "--follow"),
        *("--interval", str(interval), "--overlap", str(overlap)),
        *("--reconcile-every", str(reconcile_every)),
    )
