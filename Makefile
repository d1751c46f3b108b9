# The two commands of the README, and what they need on a fresh Debian machine.
#   make suite   run the acceptance suite (against the lab unless KUBECONFIG names a cluster)
#   make test    run the project's own tests
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: host venv suite test lab-build

host:  ## Debian packages the lab and the tests use (no-op when present)
	lab/setup-host.sh

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	PIP_CONSTRAINT=constraints.txt $(VENV)/bin/pip install -q -e '.[test]' tox
	touch $@

venv: $(VENV)/.installed

lab-build:  ## the lab's Go build, cached in ~/.cache/seatrials-lab
	lab/build.sh

suite: host venv
ifdef KUBECONFIG
	$(VENV)/bin/pytest suites --kubeconfig $(KUBECONFIG)
else
	$(PY) lab/lab run-suite
endif

test: host venv lab-build
	$(VENV)/bin/tox -e lint,tests,lab
