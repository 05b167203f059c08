# The two commands of a fresh Debian 12 machine (as root):
#   make run    install everything, start a dev cluster, mount its subvolume at ./mnt
#   make test   install, start a test cluster, run the whole suite, stop the cluster
VENV ?= .venv
export VENV

.PHONY: install run test stop lint bench

install:
	@bash scripts/install.sh

run: install
	@bash scripts/run.sh

stop:
	@bash scripts/stop.sh

test: install
	@bash scripts/test.sh

lint: install
	@$(VENV)/bin/ruff check cephmount tests bench
	@$(VENV)/bin/mypy cephmount bench

bench: install
	@$(VENV)/bin/python -m bench
