# Kiln: `make demo` (prompt -> mesh in a real Blender scene + picture), `make test`.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.kiln-setup
# Blender 4.2 LTS (bpy 4.2) for the tests, in a venv of its own: one venv holds one bpy.
# No torch there: the tests set its engine Python to .venv's, as a user would.
BPY42       := .venv-bpy42
BPY42_STAMP := $(BPY42)/.kiln-setup

.PHONY: setup bpy42 system-deps test test-engine test-blender bench clean-venv

setup: $(STAMP)

bpy42: $(BPY42_STAMP)

# torch 2.14.1 + torchvision 0.29.1 install from this machine's disk (pip); the rest from PyPI.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(VPY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

$(BPY42_STAMP): requirements-bpy42.txt
	test -x $(BPY42)/bin/python || $(PYTHON) -m venv $(BPY42)
	$(BPY42)/bin/python -m pip install -q -r requirements-bpy42.txt
	touch $@

# Debian packages for the real-window panel test (Blender 3.4 under Xvfb); root only.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  { command -v blender && command -v Xvfb && dpkg -s python3-numpy; } >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends blender xvfb xauth python3-numpy >/dev/null; }; \
	else echo "system-deps: not root or no apt-get; the real-window panel test will skip"; fi

test: setup bpy42 system-deps
	$(VPY) -m pytest -q tests

test-engine: setup
	$(VPY) -m pytest -q tests/engine

test-blender: setup bpy42 system-deps
	$(VPY) -m pytest -q tests/blender

bench: setup
	$(VPY) -m engine bench --json

clean-venv:
	rm -rf $(VENV) $(BPY42)

-include mk/blender.mk
