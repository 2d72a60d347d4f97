"""A deterministic synthetic catalogue: the same seed gives the same images."""

import datetime as dt
import math
import random
import uuid

# (disk_format, container_format, weight)
FORMATS = (
    ("qcow2", "bare", 35),
    ("raw", "bare", 18),
    ("vhd", "bare", 8),
    ("zvhd", "bare", 6),
    ("vmdk", "ovf", 6),
    ("vmdk", "bare", 3),
    ("iso", "bare", 8),
    ("vhdx", "bare", 3),
    ("vdi", "bare", 3),
    ("ami", "ami", 2),
    ("aki", "aki", 1),
    ("ari", "ari", 1),
    ("qcow2", "docker", 2),
    ("raw", "ova", 2),
    ("ploop", "bare", 1),
    (None, None, 1),
)
STATUSES = (
    ("active", 84),
    ("queued", 3),
    ("saving", 2),
    ("killed", 2),
    ("deleted", 5),
    ("pending_delete", 1),
    ("deactivated", 3),
)
DISTROS = (
    ("ubuntu", ("18.04", "20.04", "22.04", "24.04")),
    ("debian", ("10", "11", "12", "13")),
    ("centos", ("7", "8-stream", "9-stream")),
    ("rocky", ("8", "9")),
    ("fedora", ("39", "40", "41")),
    ("windows-server", ("2016", "2019", "2022")),
    ("cirros", ("0.5.2", "0.6.2")),
    ("opensuse", ("15.5", "15.6")),
    ("euleros", ("2.9", "2.10")),
    ("alpine", ("3.19", "3.20")),
)
ARCHITECTURES = ("x86_64", "aarch64")
SPAN = dt.timedelta(days=730)
GIGABYTE = 1 << 30


def generate_records(count, *, seed, projects, until):
    """Yield (number, record) pairs shaped like parsed import lines."""
    rng = random.Random(seed)
    format_choices, format_weights = zip(*((fmt[:2], fmt[2]) for fmt in FORMATS), strict=False)
    status_choices, status_weights = zip(*STATUSES, strict=False)
    project_ids = [f"project-{number:04d}" for number in range(projects)]
    for number in range(1, count + 1):
        ((disk_format, container_format),) = rng.choices(format_choices, format_weights)
        (status,) = rng.choices(status_choices, status_weights)
        yield number, _record(rng, disk_format, container_format, status, project_ids, until)


def _record(rng, disk_format, container_format, status, project_ids, until):
    created_at = until - SPAN * rng.random()
    updated_at = min(until, created_at + dt.timedelta(seconds=rng.expovariate(1 / 86400) * 30))
    deleted = status in ("deleted", "pending_delete")
    has_data = status not in ("queued", "saving") and disk_format is not None
    size = _size(rng) if has_data else None
    distro, versions = rng.choice(DISTROS)
    is_public = rng.random() < 0.12
    private_shared = not is_public and rng.random() < 0.1
    return {
        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "name": None
        if rng.random() < 0.01
        else f"{distro}-{rng.choice(versions)}-{rng.choice(ARCHITECTURES)}",
        "size": size,
        "virtual_size": size * rng.randint(1, 8)
        if size and disk_format == "qcow2" and rng.random() < 0.5
        else None,
        "status": status,
        "disk_format": disk_format,
        "container_format": container_format,
        "checksum": f"{rng.getrandbits(128):032x}" if has_data else None,
        "created_at": created_at,
        "updated_at": updated_at,
        "deleted_at": updated_at if deleted else None,
        "deleted": deleted,
        "is_public": is_public,
        "protected": rng.random() < 0.05,
        "min_ram": rng.choice((0, 0, 0, 512, 1024, 2048, 4096)),
        "min_disk": rng.choice((0, 0, 1, 10, 20, 40)),
        "owner": rng.choice(project_ids),
        "properties": _properties(rng, distro) if rng.random() < 0.3 else {},
        "members": dict.fromkeys(
            rng.sample(project_ids, k=min(len(project_ids), rng.randint(1, 3))), False
        )
        if private_shared
        else {},
    }


def _size(rng):
    # Log-uniform from a few hundred bytes to about 80 GB, most between 100 MB and 10 GB.
    exponent = rng.triangular(math.log(300), math.log(80 * GIGABYTE), math.log(2 * GIGABYTE))
    return int(math.exp(exponent))


def _properties(rng, distro):
    properties = {"os_distro": distro, "architecture": rng.choice(ARCHITECTURES)}
    if rng.random() < 0.5:
        properties["hw_disk_bus"] = rng.choice(("virtio", "scsi", "ide"))
    if rng.random() < 0.3:
        properties["__os_type"] = "Windows" if distro.startswith("windows") else "Linux"
    return properties
