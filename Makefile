# uwsgi-deploy: install into the deploy account's home, test, lint.
#   make install [PREFIX=~www-data] [DESTDIR=/staging]
#   make uninstall | check | test | lint | demo | demo-stop | fleet-demo | bench
PREFIX ?= $(HOME)
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/uwsgi-deploy
SHAREDIR ?= $(PREFIX)/share/uwsgi-deploy
# man pages: install.sh puts them where man looks (/usr/local/share/man) when run as root
MANDIR ?= $(PREFIX)/share/man
# The interpreter installed tools run with: the system's, which every account can read.
PYTHON ?= $(shell command -v /usr/bin/python3 || command -v python3)

VENV ?= .venv
TOOLS := $(notdir $(wildcard bin/*))
MODULES := $(wildcard lib/uwsgi_deploy/*.py)
SHARE_FILES := $(shell find share -type f 2>/dev/null)

DEMO_DIR ?= /tmp/uwsgi-deploy-demo
# the library, and the development harness in dev/ (not installed)
RUN_WITH_LIB = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHONPATH="$(CURDIR)/lib:$(CURDIR)/dev" $(VENV)/bin/python

.PHONY: all install uninstall check test lint venv dev-venv site wheels clean demo demo-stop fleet-demo bench wrk man docs

all: dev-venv

# The checkout's own environment, for running its tools and tests in place:
# the tools' pinned requirements; `make dev-venv`, which the test, check and
# lint targets pull in, adds what they use (requirements-dev.txt). `make
# install` does not need it (install.sh builds none: a host carries no venv).
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

dev-venv: $(VENV)/.dev-installed
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The pinned requirements as installed tools carry them (LIBDIR/site), compiled:
# built beside and renamed, so installs running at once never see half of it.
# An install needs only this, not the checkout's venv: pip runs as Debian's
# python3-pip where that is installed; else from Debian's own wheel of it
# (python3-venv brings it; pip runs from its wheel as ensurepip runs it), which
# costs an install 1.2 CPU-s more (imported from a zip, each module is compiled
# at every run); else from the venv. A venv costs a host twice what this does.
# Of site/bin only uv's binaries stay (deploy-venv runs uv): the scripts pip
# writes there (dotenv, idna, normalizer) name the interpreter that built
# them, which an installed tool never runs, and nothing runs them.
BUILD ?= build
SYSTEM_PIP ?= $(shell $(PYTHON) -c 'import pip' 2>/dev/null && echo yes)
PIP_WHEEL ?= $(firstword $(wildcard /usr/share/python-wheels/pip-*.whl))
ifneq ($(SYSTEM_PIP),)
SITE_PIP = $(PYTHON) -m pip
SITE_PIP_NEEDS =
else ifneq ($(PIP_WHEEL),)
SITE_PIP = $(PYTHON) $(PIP_WHEEL)/pip
SITE_PIP_NEEDS =
else
SITE_PIP = $(VENV)/bin/pip
SITE_PIP_NEEDS = $(VENV)/.installed
endif
# WHEELS=DIR: from the wheels in DIR only, no index (a host that cannot reach
# PyPI, or each host of a fleet whose install.yml shipped them: `make wheels`).
WHEELS ?=
site: $(BUILD)/site
$(BUILD)/site: requirements.txt $(SITE_PIP_NEEDS)
	mkdir -p $(BUILD) && new=$@.new.$$$$ && rm -rf $$new && \
	$(SITE_PIP) install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
	  $(if $(WHEELS),--no-index --find-links "$(WHEELS)") --target $$new -r requirements.txt && \
	for file in $$new/bin/*; do if [ "$$(head -c 2 "$$file")" = "#!" ]; then rm -f "$$file"; fi; done && \
	$(PYTHON) -m compileall -q $$new && \
	rm -rf $@.old.$$$$ && if [ -d $@ ]; then mv $@ $@.old.$$$$; fi && \
	{ mv -T $$new $@ 2>/dev/null || rm -rf $$new; } && rm -rf $@.old.$$$$ && touch $@

# The pinned requirements' wheels, for this machine's platform, fetched once:
# what `install.sh --wheels` and install.yml's `wheels` install from, and what
# the tests' fleet worlds ship to their hosts. Built beside and renamed.
wheels: $(BUILD)/wheels
$(BUILD)/wheels: requirements.txt $(SITE_PIP_NEEDS)
	mkdir -p $(BUILD) && new=$@.new.$$$$ && rm -rf $$new && \
	$(SITE_PIP) download --quiet --disable-pip-version-check --dest $$new -r requirements.txt && \
	rm -rf $@.old.$$$$ && if [ -d $@ ]; then mv $@ $@.old.$$$$; fi && \
	{ mv -T $$new $@ 2>/dev/null || rm -rf $$new; } && rm -rf $@.old.$$$$ && touch $@

# Tools get an absolute shebang and library path, so they need no PYTHONPATH;
# the pinned requirements are vendored into LIBDIR/site.
install: $(BUILD)/site
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/uwsgi_deploy
	for tool in $(TOOLS); do \
	  sed -e '1s|.*|#!$(PYTHON)|' \
	      -e 's|^sys.path\[:0\] = .*# LIBPATH$$|sys.path[:0] = ["$(LIBDIR)", "$(LIBDIR)/site"]|' \
	      bin/$$tool > $(DESTDIR)$(BINDIR)/$$tool.tmp && \
	  chmod 755 $(DESTDIR)$(BINDIR)/$$tool.tmp && \
	  mv -f $(DESTDIR)$(BINDIR)/$$tool.tmp $(DESTDIR)$(BINDIR)/$$tool || exit 1; \
	done
	install -m 644 $(MODULES) $(DESTDIR)$(LIBDIR)/uwsgi_deploy/
	sed -i -e 's|^SHARE_DIR = .*# SHAREDIR$$|SHARE_DIR = "$(SHAREDIR)"|' \
	       -e 's|^BIN_DIR = .*# BINDIR$$|BIN_DIR = "$(BINDIR)"|' $(DESTDIR)$(LIBDIR)/uwsgi_deploy/paths.py
	# the vendored requirements, built once per requirements.txt (site:), copied
	rm -rf $(DESTDIR)$(LIBDIR)/site.new.$$$$ && cp -a $(BUILD)/site $(DESTDIR)$(LIBDIR)/site.new.$$$$ && \
	  rm -rf $(DESTDIR)$(LIBDIR)/site && mv $(DESTDIR)$(LIBDIR)/site.new.$$$$ $(DESTDIR)$(LIBDIR)/site
	# compiled now: the deploy account cannot write __pycache__ here later
	$(PYTHON) -m compileall -q $(DESTDIR)$(LIBDIR)/uwsgi_deploy
	for file in $(SHARE_FILES); do \
	  if [ -x $$file ]; then mode=755; else mode=644; fi; \
	  install -D -m $$mode $$file $(DESTDIR)$(SHAREDIR)/$${file#share/} || exit 1; \
	done
	$(MAKE) --no-print-directory man MANDIR=$(DESTDIR)$(MANDIR)
	@echo "installed $(TOOLS) into $(DESTDIR)$(BINDIR)"

# A man page per tool, generated from its own --help (usage, docstring,
# options), and uwsgi-deploy-settings(7) from SETTINGS: they cannot drift.
# One process reads every tool's --help (with the vendored requirements), and
# writes each page under a name of its own, then renames it: several installs
# into one MANDIR at once (accounts of one machine) never see a half page.
man: $(BUILD)/site
	PYTHONPATH="$(CURDIR)/$(BUILD)/site" $(PYTHON) dev/docgen.py install-man $(MANDIR) $(addprefix bin/,$(TOOLS))

# The settings reference in docs/, regenerated from the code (a test checks it is current).
docs: $(VENV)/.installed
	$(VENV)/bin/python dev/docgen.py settings-md > docs/settings.md

uninstall:
	for tool in $(TOOLS); do rm -f $(DESTDIR)$(BINDIR)/$$tool; done
	rm -rf $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SHAREDIR)
	for tool in $(TOOLS); do rm -f $(DESTDIR)$(MANDIR)/man1/$$tool.1; done
	rm -f $(DESTDIR)$(MANDIR)/man7/uwsgi-deploy-settings.7
	-rmdir $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR) 2>/dev/null
	-rmdir $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share 2>/dev/null

# The checkout's tools run with the venv's python (#!/usr/bin/env python3).
# Tiers (docs/testing.md): `check` runs the tests that need no Emperor,
# load, ssh, fleet or network; `test` runs every test, TEST_WORKERS at once
# (they mostly wait on servers, so more workers than cores pay); tests that
# share a module-scoped world (xdist_group) stay on one worker; units of work
# go out in t/conftest.py's order, slowest kinds first (--no-loadscope-reorder).
PYTEST = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest
UNIT_TESTS = not (emperor or load or ssh or fleet or network)
TEST_WORKERS ?= 12
CHECK_WORKERS ?= 2
PYTEST_ARGS ?=

check: $(VENV)/.dev-installed
	$(PYTEST) -q -n $(CHECK_WORKERS) -m "$(UNIT_TESTS)" $(PYTEST_ARGS)

test: $(VENV)/.dev-installed wrk $(BUILD)/wheels
	$(PYTEST) -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=30 $(PYTEST_ARGS)

# wrk is a benchmark tool: the production install leaves it out; the
# benchmarks (and the test that runs one) install it here, as root.
wrk:
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing wrk (for bench/deploy) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || exit 1; \
	  else \
	    echo "make: wrk not found: bench/deploy needs it; run as root to install it, or: sudo apt-get install wrk" >&2; \
	    exit 1; \
	  fi; \
	fi

# The example app, pushed into a sandbox Emperor + nginx on a loopback port.
demo: $(VENV)/.installed
	$(RUN_WITH_LIB) dev/demo.py start $(DEMO_DIR)

demo-stop: $(VENV)/.installed
	$(RUN_WITH_LIB) dev/demo.py stop $(DEMO_DIR)

# Three hosts (deploy accounts with sshd, Emperor, nginx; needs root), one
# push after another, all or nothing: prints each host's live version after
# each step and fails if the fleet ever ended split.
fleet-demo: $(VENV)/.installed $(BUILD)/wheels
	$(RUN_WITH_LIB) dev/fleet_demo.py

# Deploy speed and zero downtime vs an in-place reload, then dependency
# environments (uv vs pip, a Flask + SQLAlchemy app's pushes); BENCH_ARGS=--quick for a smoke run.
bench: $(VENV)/.installed wrk $(BUILD)/wheels
	$(RUN_WITH_LIB) bench/deploy --timeline docs/deploy-timeline.svg $(BENCH_ARGS)
	$(RUN_WITH_LIB) bench/venv $(BENCH_ARGS)
	$(RUN_WITH_LIB) bench/fleet $(BENCH_ARGS)
	$(RUN_WITH_LIB) bench/background $(BENCH_ARGS)
	$(RUN_WITH_LIB) bench/keys $(BENCH_ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/python -m pyflakes lib t dev share bench $(addprefix bin/,$(TOOLS))

clean:
	rm -rf $(VENV) $(BUILD) .pytest_cache
