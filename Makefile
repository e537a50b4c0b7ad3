# Two commands on a fresh machine: `make demo` (the main job) and `make test` (what CI runs).
# Both create the virtual environment first. GPU hosts: `make install GPU=1`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GPU ?= 0
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: install demo test test-embedded test-pg15 lint bench clean browser comfyui-peer

$(BIN)/anime: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
ifeq ($(GPU),1)
	# insightface needs the CPU onnxruntime at install time; both wheels write the same
	# package folder, so the GPU build goes in last, over it, and is the one that imports.
	$(PIP) --force-reinstall --no-deps 'onnxruntime-gpu>=1.17'
endif
	touch $(BIN)/anime

install: $(BIN)/anime

demo: install
	$(BIN)/anime demo

# The whole suite on the embedded PostgreSQL, then every database test again on Debian's
# PostgreSQL 15 (started for the run) through DATABASE_URL.
test: install lint test-embedded test-pg15

lint: install
	$(BIN)/ruff check .

test-embedded: install browser comfyui-peer
	env -u DATABASE_URL $(BIN)/pytest -q

# The review page is checked in a real headless browser: Debian's chromium.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }
	@command -v chromium >/dev/null || echo "chromium is not installed: the browser test will say it skipped"

# The real ComfyUI tier (tests/real_comfyui) runs on the peer ComfyUI beside the checkout when
# there is one: its own virtual environment is built once, here, not inside a test.
COMFYUI_PEER ?= ../shared/peers/comfyui
COMFYUI_PEER_VENV ?= .cache/comfyui-venv
export ANIME_COMFYUI_PEER_VENV := $(abspath $(COMFYUI_PEER_VENV))
comfyui-peer:
	@if [ -n "$$COMFYUI_URL" ]; then echo "real ComfyUI tier: $$COMFYUI_URL"; \
	elif [ ! -x $(COMFYUI_PEER)/setup.sh ]; then echo "real ComfyUI tier: no peer at $(COMFYUI_PEER)"; \
	elif [ ! -f $(COMFYUI_PEER_VENV)/.ready ]; then $(COMFYUI_PEER)/setup.sh $(COMFYUI_PEER_VENV) && touch $(COMFYUI_PEER_VENV)/.ready; fi
	@# The newest workflow-template corpus (tests/real_comfyui/test_workflow_corpus.py), once.
	@ls .cache/workflow-templates/comfyui_workflow_templates_json-*.whl >/dev/null 2>&1 || \
	  $(BIN)/pip download -q --disable-pip-version-check --no-deps -d .cache/workflow-templates comfyui-workflow-templates-json || \
	  echo "newest workflow templates not downloaded: that corpus test will say it skipped"

test-pg15: install
	tests/with_debian_postgres.sh $(BIN)/pytest -q -m database

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache

# Running the studio (README: "Running the studio").
.PHONY: server serve worker test-ops

server: install
	$(BIN)/anime server

serve: install
	$(BIN)/anime serve

worker: install
	$(BIN)/anime worker

test-ops: install
	$(BIN)/pytest -q tests/ops
