"""The container image with podman: `python -m deploy.podman build` (make image).

The Containerfile's base is Debian's bookworm-slim. Where no registry is
reachable, it is made here: `debootstrap --variant=minbase bookworm`, slimmed
like the official image, imported under the same name, so the same file
builds here and anywhere else. Podman on this kind of machine needs runc and
no default ulimits (containers.conf); `podman_ready` sets both if missing.
"""

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy import CHECKOUT
from deploy.processes import READY_DEADLINE_SECONDS, ProcessFailed

# The Containerfile's base, passed to it as BASE (its own default names the same image).
BASE = "docker.io/library/debian:bookworm-slim"
HERE = Path(__file__).resolve().parent / "container"
CONTAINERFILE = HERE / "Containerfile"
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
# Settings podman here cannot run without (the kernel refuses crun and rlimits).
NEEDED = {"containers": ("default_ulimits", "[]"), "engine": ("runtime", '"runc"')}
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SLIM = HERE / "slim-rootfs.sh"


def image_name():
    return f"image-catalogue:{importlib.metadata.version('image-catalogue')}"


def podman(*arguments, **options):
    """Run podman; its output as text. Podman's systemd notices on stderr are not failures."""
    result = subprocess.run(
        ["podman", *arguments], capture_output=True, text=True, check=False, **options
    )
    if result.returncode:
        raise ProcessFailed(f"podman {' '.join(arguments[:3])} failed: {result.stderr[-2000:]}")
    return result.stdout


def podman_ready():
    """Add what podman needs here to containers.conf, keeping what is there."""
    text = CONTAINERS_CONF.read_text() if CONTAINERS_CONF.exists() else ""
    for section, (key, value) in NEEDED.items():
        if f"\n{key} " in f"\n{text}" or f"\n{key}=" in f"\n{text}":
            continue
        header = f"[{section}]"
        line = f"{key} = {value}"
        text = (
            text.replace(header, f"{header}\n{line}", 1)
            if header in text
            else (f"{text}\n{header}\n{line}\n")
        )
    try:
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(text)
    except PermissionError:
        needed = "; ".join(
            f"[{section}] {key} = {value}" for section, (key, value) in NEEDED.items()
        )
        raise ProcessFailed(f"{CONTAINERS_CONF} needs {needed}: run as root") from None


def ensure_base(log=print):
    """The base image: the registry's if present here, else one made with debootstrap."""
    if subprocess.run(["podman", "image", "exists", BASE], check=False).returncode == 0:
        return
    log(f"making {BASE} with debootstrap (once per machine)")
    with tempfile.TemporaryDirectory(prefix="image-catalogue-rootfs-") as folder:
        rootfs = Path(folder) / "rootfs"
        mirror = _debian_mirror()
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
            check=True,
            capture_output=True,
        )
        subprocess.run(["sh", str(SLIM), str(rootfs), mirror], check=True)
        tar = ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."]
        with subprocess.Popen(tar, stdout=subprocess.PIPE) as archive:
            podman("import", "--change", 'CMD ["bash"]', "-", BASE, stdin=archive.stdout)
        if archive.returncode:
            raise ProcessFailed(f"tar of the base image's files failed ({archive.returncode})")


def _debian_mirror():
    """The Debian archive apt uses on this machine."""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        for word in path.read_text(errors="replace").split() if path.is_file() else []:
            if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                return word.rstrip("/")
    return "http://deb.debian.org/debian"


def build(context=CHECKOUT, log=print):
    """Build the image from the wheel in `context`/dist/ (make dist); return its name.

    The context holds what the image needs: requirements.lock and the wheel.
    """
    podman_ready()
    ensure_base(log)
    name = image_name()
    certificate = []
    if HOST_CA_BUNDLE.exists():  # pip in the build trusts what this machine trusts
        mounted = "/run/host-ca-bundle.crt"
        certificate = ["-v", f"{HOST_CA_BUNDLE}:{mounted}:ro", "--build-arg", f"PIP_CERT={mounted}"]
    began = time.monotonic()
    podman(
        *("build", "--network", "host", "--format", "docker", "--pull=never"),
        *("--build-arg", f"BASE={BASE}"),
        *certificate,
        *("-f", str(CONTAINERFILE), "-t", name, str(context)),
    )
    log(f"built {name} in {time.monotonic() - began:.0f} s, {image_size_mb(name):.0f} MB")
    return name


def image_size_mb(name):
    (image,) = json.loads(podman("image", "inspect", name))
    return image["Size"] / 1e6


class Container:
    """A container of the image, running until stop(); host networking (it reaches loopback)."""

    def __init__(self, image, name, volumes=(), environment=None):
        self.name = name
        podman("run", "-d", "--name", name, *_run_options(volumes, environment), image)

    def running(self):
        (state,) = json.loads(podman("container", "inspect", self.name))
        if not state["State"]["Running"]:
            raise ProcessFailed(
                f"container {self.name} exited: {podman('logs', self.name)[-2000:]}"
            )
        return True

    def healthy(self):
        return (
            subprocess.run(
                ["podman", "healthcheck", "run", self.name], capture_output=True, check=False
            ).returncode
            == 0
        )

    def wait_until_healthy(self, timeout=READY_DEADLINE_SECONDS):
        deadline = time.monotonic() + timeout
        while self.running() and not self.healthy():
            if time.monotonic() > deadline:
                raise ProcessFailed(f"container {self.name} was not healthy within {timeout} s")
            time.sleep(0.2)

    def exec(self, *command):
        return podman("exec", self.name, *command)

    def restart(self):
        podman("restart", self.name)

    def stop(self):
        subprocess.run(
            ["podman", "rm", "-f", "-t", "5", self.name], capture_output=True, check=False
        )


def run_once(image, *arguments, volumes=(), environment=None, stdin=None):
    """`podman run --rm IMAGE ARGUMENTS` (an image-catalogue command); its output."""
    options = _run_options(volumes, environment)
    return podman("run", "--rm", "-i", *options, image, *arguments, input=stdin)


def _run_options(volumes, environment):
    """podman run's options: host networking, each volume, each environment variable."""
    return [
        *("--network", "host"),
        *(option for volume in volumes for option in ("-v", volume)),
        *(option for item in (environment or {}).items() for option in ("-e", "=".join(item))),
    ]


def main():
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python -m deploy.podman build")
    if shutil.which("podman") is None:
        sys.exit("podman is not installed (make image installs it)")
    try:
        build(log=lambda message: print(message, file=sys.stderr))
    except ProcessFailed as problem:
        sys.exit(f"make image: {problem}")


if __name__ == "__main__":
    main()
