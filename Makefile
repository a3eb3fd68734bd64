# Build llama.cpp without its examples, tools, tests and server binaries: only the library
# llama-cpp-python loads is needed, and skipping the rest cuts the from-source compile.
# Built for this machine's CPU (-march=native: AVX-512 where it has it, 16% faster prompt evaluation
# than an AVX2 build here), minus AMX: on CPUs that report AMX, llama.cpp's AMX tile code draws SIGILL
# ("Illegal instruction") from a kernel that has not granted the process AMX state.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CMAKE_ARGS ?= -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$(NO_AMX)" -DCMAKE_CXX_FLAGS="$(NO_AMX)"
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export ANONYMIZED_TELEMETRY = False

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint docs clean

install: $(STAMP)

# torch is installed first and pinned, so no later dependency can pull a multi-GB CUDA build. The page's
# browser tests drive Debian's chromium through Playwright (never a browser Playwright downloads); CI runs
# as root, so apt-get installs it where it is missing.
$(STAMP): pyproject.toml
	command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel setuptools
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test,ray,docs]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/tasteprint demo

# The service on the demo store (made by `make demo` when missing): prints a token for user 1, then serves
# the page at http://127.0.0.1:8000/ and the API (docs at /docs).
DEMO_STORE := .tasteprint/demo
serve: install
	test -f $(DEMO_STORE)/tasteprint.sqlite || $(VENV)/bin/tasteprint demo
	@echo "user 1's token (sign in at http://127.0.0.1:8000/): $$($(VENV)/bin/tasteprint token create 1 --store $(DEMO_STORE))"
	TASTEPRINT_ADMIN_TOKEN=$${TASTEPRINT_ADMIN_TOKEN:-demo-admin-token} $(VENV)/bin/tasteprint serve --store $(DEMO_STORE)

# Two pytest-xdist workers, each given half the cores (tests/conftest.py); a module that builds a costly
# store once carries an xdist_group mark, so its tests share one worker and one build.
test: lint
	$(PY) -m pytest -q -n 2 --dist loadgroup

# ruff, and the layers contract in pyproject.toml: an import that runs back up the pipeline fails here.
lint: install
	$(VENV)/bin/ruff check src tests eval
	$(VENV)/bin/lint-imports

docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) .tasteprint site
