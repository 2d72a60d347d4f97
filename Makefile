# `make run` serves the demo catalogue; `make test` runs the test suite;
# `make drills` runs the slow fault, restart, deployment and fuzz drills
# (installing the Debian packages they drive).
# All need only Python 3.11+: everything else installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test drills lint bench bench-tune bench-profile bench-mirror bench-writes \
	cluster lock \
	openstack-lock dist image sample-config clean

install: $(INSTALLED)

# Installs exactly the hashed lock (make lock refreshes it from requirements*.txt),
# then this checkout as the package, editable (the image-catalogue command).
$(INSTALLED): requirements-dev.lock setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# No DATABASE_URL given: the embedded PostgreSQL, asked for by name.
run: install
	DATABASE_URL="$${DATABASE_URL:-embedded}" $(BIN)/python -m deploy.localserver

test: install
	$(BIN)/python -m pytest -m "not drill"

# The drills run real nginx, HAProxy, PgBouncer, MariaDB, promtool and podman: installed if missing.
PODMAN_PACKAGES := podman runc debootstrap
DRILL_PACKAGES := nginx haproxy pgbouncer mariadb-server prometheus systemd $(PODMAN_PACKAGES)
drills: install
	.ci/install-tools $(DRILL_PACKAGES)
	$(BIN)/python -m pytest -m drill

bench: install
	.ci/install-tools nginx wrk pgbouncer
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r bench/requirements.lock
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# A primary, two streaming replicas, PgBouncer, two gunicorn instances and
# nginx on loopback (deploy/cluster.py), until Ctrl-C.
cluster: install
	.ci/install-tools nginx pgbouncer
	$(BIN)/python -m deploy.cluster

# gunicorn settings measured against each other; where one request's time goes.
bench-tune: install
	.ci/install-tools nginx wrk
	$(BIN)/python -m bench.tuning $(BENCH_ARGS)

bench-profile: install
	$(BIN)/python -m bench.profile_request $(BENCH_ARGS)

# v1 writes through the service against Glance v2 directly: a real Keystone and Glance.
bench-writes: install
	.ci/install-tools nginx
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r bench/requirements.lock
	$(BIN)/python -m bench.writes $(BENCH_ARGS)

# images sync-glance at scale: a 1,000,000-image Glance database, then follow passes.
bench-mirror: install
	$(BIN)/python -m bench.glance_mirror $(BENCH_ARGS)

# Resolve requirements*.txt (production; development; benchmark) into hashed
# locks of every transitive dependency.
LOCK := $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes --quiet
lock: install
	$(LOCK) requirements.txt -o requirements.lock
	$(LOCK) requirements-dev.txt -o requirements-dev.lock
	$(LOCK) requirements-dev.txt bench/requirements.txt -o bench/requirements.lock

# The same for Keystone and Glance, each installed into a virtualenv of its own
# by the drills that run them (deploy/openstack_venvs.py).
openstack-lock: install
	$(LOCK) deploy/openstack/keystone-requirements.txt -o deploy/openstack/keystone.lock
	$(LOCK) deploy/openstack/glance-requirements.txt -o deploy/openstack/glance.lock

# The source distribution and the wheel, in dist/.
dist: install
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# The container image (deploy/container/Containerfile, podman), tagged image-catalogue:VERSION.
image: dist
	.ci/install-tools $(PODMAN_PACKAGES)
	$(BIN)/python -m deploy.podman build

# The sample configuration, from the option declarations (a test holds them equal).
sample-config: install
	$(BIN)/python -m app.config.sample > app/config/image-catalogue.conf.sample.new
	mv app/config/image-catalogue.conf.sample.new app/config/image-catalogue.conf.sample

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .openstack-venvs .pytest_cache .ruff_cache dist build *.egg-info
