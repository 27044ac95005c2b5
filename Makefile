# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install rnnlab, train the default experiment (no download)
#   make test   the same venv with the test extras, then the test suite
#   make docs   the documentation site into site/ (the docs extra into the same venv)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-avx2 lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# byte-compiled at install (pip's default, ~20 s once): where PYTHONDONTWRITEBYTECODE is set (as
	# on our development machines) Python never caches bytecode itself, and every rnnlab process would
	# compile torch's sources again (2.3 s of a 4-s one-step trial, measured); rnnlab's own modules too
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q rnnlab > /dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rnnlab train configs/lstm_sine.yaml

# then the precision tests again with oneDNN capped to AVX2, so a CPU with native bfloat16 also
# exercises the path of CPUs without it (AVX2 only: no bf16 LSTM kernel); ATEN_CPU_CAPABILITY=avx2
# makes PyTorch's own kernels take their AVX2 code too
test: $(STAMP)
	$(BIN)/python -m pytest -q
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_precision.py tests/test_precision_tensorboard.py tests/test_budget.py

# the whole suite as an AVX2-only CPU runs it (oneDNN capped)
test-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check rnnlab tests benchmarks

# the site: mkdocs build --strict into site/ (a broken link, a missing page, a failing reference generation
# are errors); the configuration and CLI references are generated from the program (docs/gen_reference.py)
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache
