"""The service's command line, as a child process runs it from this checkout."""

import subprocess
import sys

from deploy import CHECKOUT


def catalogue_command(*arguments):
    """`image-catalogue ARGUMENTS...` (db, images, tokens, serve, ...) for subprocess."""
    return [sys.executable, "-m", "app", *arguments]


def run_catalogue(*arguments, **options):
    """Run `image-catalogue ARGUMENTS...` from this checkout and wait for it (text output).

    `options` go to subprocess.run (env, check, capture_output, ...).
    """
    return subprocess.run(catalogue_command(*arguments), cwd=CHECKOUT, text=True, **options)


def follow_command(*, interval, overlap, reconcile_every):
    """`images sync-glance --follow` as a child process (the configuration names the source)."""
    return catalogue_command(
        *("images", "sync-glance", "--follow"),
        *("--interval", str(interval), "--overlap", str(overlap)),
        *("--reconcile-every", str(reconcile_every)),
    )
