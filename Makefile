# Build llama.cpp without its examples, tools, tests and server binaries: only the library
# llama-cpp-python loads is needed, and skipping the rest cuts the from-source compile.
# Not -march=native: on CPUs that report AMX, a native build emits AMX tile instructions that the
# kernel refuses to an unprepared process (SIGILL, "Illegal instruction", on the first decode).
# AVX2/FMA/F16C runs on any x86-64 machine of this decade.
export CMAKE_ARGS ?= -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export ANONYMIZED_TELEMETRY = False

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

install: $(STAMP)

# torch is installed first and pinned, so no later dependency can pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel setuptools
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test,ray]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/tasteprint demo

test: install
	$(VENV)/bin/ruff check src tests eval
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests eval

clean:
	rm -rf $(VENV) .tasteprint
