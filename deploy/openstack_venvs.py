"""Keystone's and Glance's virtualenvs for the drills, installed once per checkout.

Each is built from its hashed lock (deploy/openstack/NAME.lock, `make openstack-lock`)
into .openstack-venvs/NAME-DIGEST, DIGEST being the lock's own hash: a second run
finds it ready, and a changed lock builds a new one (and removes the old).
"""

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time

from uv import find_uv_bin

from deploy import CHECKOUT as ROOT

# The requirements, their locks, and keystone_wsgi.py.
OPENSTACK_FILES = ROOT / "deploy" / "openstack"
VENVS = ROOT / ".openstack-venvs"
_COMPLETE = ".complete"


def installed_venv(name, report=print):
    """The path of NAME's virtualenv (keystone, glance), installed from its lock if missing.

    `report` is told what is installed and how long it took.
    """
    lock = OPENSTACK_FILES / f"{name}.lock"
    venv = VENVS / f"{name}-{hashlib.sha256(lock.read_bytes()).hexdigest()[:16]}"
    VENVS.mkdir(exist_ok=True)
    # Two test runs in one checkout build a venv once: the second waits here.
    with (VENVS / f".{name}.flock").open("w") as flock:
        fcntl.flock(flock, fcntl.LOCK_EX)
        if (venv / _COMPLETE).exists():
            return venv
        for stale in VENVS.glob(f"{name}-*"):  # an older lock's, or a half-built one
            shutil.rmtree(stale)
        report(f"installing {name} from {lock.relative_to(ROOT)} into {venv.relative_to(ROOT)}")
        started = time.monotonic()
        _uv("venv", "--quiet", "--python", sys.executable, str(venv))
        # No bytecode now: compiling every file (openstacksdk, networkx...)
        # takes longer than the first processes take to compile what they import.
        _uv(
            *("pip", "install", "--quiet", "--require-hashes"),
            *("--python", str(venv / "bin" / "python"), "-r", str(lock)),
        )
        (venv / _COMPLETE).touch()
        report(f"{name} installed in {time.monotonic() - started:.1f} s")
        return venv


def _uv(*arguments):
    result = subprocess.run([find_uv_bin(), *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"uv {' '.join(arguments[:2])} failed:\n{result.stderr[-3000:]}")
