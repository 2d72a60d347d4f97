"""The listing's bytes for a fixed catalogue never change (the performance work must keep them).

tests/golden/listing-bytes.json holds, for each request below, the SHA-256 and
length of the body served before the hot path was optimised. A change of
behaviour shows up here as a different digest for the shapes it touches.
"""

import hashlib
import json
import os
from pathlib import Path

import pytest

from app.db import db
from app.tokens import issue_token
from helpers import load_synthetic

GOLDEN = Path(__file__).resolve().parent / "golden" / "listing-bytes.json"
CALLERS = {"member": ("project-0001", "member"), "admin": ("project-0002", "admin")}
REQUESTS = [
    ("member", "/v1.1/images/detail"),
    ("member", "/v1.1/images/detail?limit=1000"),
    ("member", "/v1/images?limit=1000"),
    ("member", "/v1.1/images/detail?limit=1000&sort_key=name&sort_dir=asc"),
    ("member", "/v1.1/images/detail?limit=1000&sort_key=size&sort_dir=desc"),
    ("member", "/v1.1/images/detail?limit=1000&sort_key=updated_at&sort_dir=asc"),
    ("member", "/v1.1/images/detail?limit=1000&disk_format=in:qcow2,raw&container_format=bare"),
    ("member", "/v1.1/images/detail?limit=1000&changes-since=2026-01-01"),
    ("member", "/v1.1/images/detail?limit=1000&property-os_distro=ubuntu"),
    ("member", "/v1.1/images/detail?limit=1000&size_min=1000000&size_max=5000000000"),
    ("member", "/v1.1/images/detail?limit=1000&protected=false&min_ram=1024"),
    ("admin", "/v1.1/images/detail?limit=1000&is_public=none"),
    ("admin", "/v1.1/images/detail?limit=1000&is_public=none&changes-since=2025-06-01"),
    ("admin", "/v1.1/images/detail?limit=1000&is_public=false&sort_key=status"),
    ("admin", "/v1/images?limit=7&is_public=none&sort_key=id&sort_dir=asc"),
]


@pytest.fixture
def generated(app):
    load_synthetic(app, 400, seed=11, projects=5)
    with app.app_context():
        return {
            caller: issue_token(db.session, project_id=project, roles=[role], ttl_seconds=0)
            for caller, (project, role) in CALLERS.items()
        }


def _bodies(client, tokens):
    bodies = {}
    for caller, path in REQUESTS:
        response = client.get(path, headers={"X-Auth-Token": tokens[caller]})
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_data()
        digest = hashlib.sha256(body).hexdigest()
        bodies[f"{caller} {path}"] = {"sha256": digest, "bytes": len(body)}
    return bodies


def test_listing_bytes_are_unchanged(client, generated):
    served = _bodies(client, generated)
    if os.environ.get("GOLDEN_UPDATE") == "1":  # only when a change of bytes is intended
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(served, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert set(served) == set(golden)
    differing = [request for request in golden if served[request] != golden[request]]
    assert differing == []
    assert sum(entry["bytes"] for entry in golden.values()) > 500_000
