"""Hostile query strings: never a 500, never a change to the data."""

import os
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from helpers import DETAIL, fingerprint

# Failing examples are also kept in hypothesis' example database
# (.hypothesis/, git-ignored) and replayed first on the next run.
FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
PARAMETERS = [
    "name",
    "status",
    "container_format",
    "disk_format",
    "size_min",
    "size_max",
    "changes-since",
    "is_public",
    "protected",
    "min_ram",
    "min_disk",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "property-os_distro",
    "property-",
    "property-%",
    "changes_since",
    "unknown",
    "",
]
NASTY = [
    "",
    "in:",
    'in:"a',
    'in:"a,b",c',
    "eq:",
    "gt:5",
    "%",
    "_",
    "%_%",
    "'; DROP TABLE images; --",
    "\x00",
    "a\x00b",
    "None",
    "none",
    "-1",
    "+1",
    " 1",
    "9" * 400,
    "1e9",
    "NaN",
    "∞",
    "2016-05-22T06:04:20+01:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "00000000-0000-0000-0000-000000000000",
    "{3c3d1d01-b48a-4639-8a88-08be3b9b5d78}",
    "\ud7ff\ue000",
    "🙂" * 50,
    "x" * 10_000,
]
RAW = ["%zz", "%", "%e9", "a=%ff%fe", "&&&", "=x", "%00=1", "name", "name=a=b", ";;", "+=+"]
values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers().map(str),
    st.binary(max_size=20).map(lambda raw: raw.decode("latin-1")),
)
pairs = st.lists(st.tuples(st.sampled_from(PARAMETERS) | st.text(max_size=10), values), max_size=6)
query_strings = st.builds(
    lambda items, raw: "&".join([f"{_encode(key)}={_encode(value)}" for key, value in items] + raw),
    pairs,
    st.lists(st.sampled_from(RAW), max_size=2),
)


def _encode(text):
    # surrogatepass: lone surrogates become the invalid UTF-8 bytes a hostile client sends.
    return quote(text, errors="surrogatepass")


def _fuzz(client, token, query_string, path):
    response = client.get(path, query_string=query_string, headers={"X-Auth-Token": token})
    assert response.status_code in (200, 400, 414), (query_string, response.get_data(as_text=True))
    body = response.get_json()
    assert ("images" in body) if response.status_code == 200 else ("error" in body)


def _run(app, client, make_image, make_token, examples):
    for number in range(20):
        make_image(
            name=f"n{number}",
            is_public=number % 2 == 0,
            members=["p0"] if number % 3 else [],
            properties={"os_distro": "ubuntu"},
        )
    tokens = [make_token("p0"), make_token("p0", roles=("admin",)), make_token(None)]
    before = fingerprint(app)
    print(f"fuzz seed {FUZZ_SEED}: set FUZZ_SEED={FUZZ_SEED} to replay this run")

    @seed(FUZZ_SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        query_string=query_strings,
        token=st.sampled_from(tokens),
        path=st.sampled_from([DETAIL, "/v1/images"]),
    )
    def fuzz(query_string, token, path):
        _fuzz(client, token, query_string, path)

    fuzz()
    assert fingerprint(app) == before


def test_hostile_query_strings(app, client, make_image, make_token):
    _run(app, client, make_image, make_token, examples=300)


@pytest.mark.drill
def test_hostile_query_strings_long(app, client, make_image, make_token):
    _run(app, client, make_image, make_token, examples=int(os.environ.get("FUZZ_EXAMPLES", 5000)))


@pytest.mark.drill
def test_schemathesis_finds_no_server_error(live_server, make_token, tmp_path):
    token = make_token(roles=("admin",))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{live_server}/openapi.json",
            "--header",
            f"X-Auth-Token: {token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            os.environ.get("SCHEMATHESIS_EXAMPLES", "200"),
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache folder (.schemathesis) stays out of the work tree
    )
    assert result.returncode == 0, result.stdout[-4000:]
    print(result.stdout[-1500:])
