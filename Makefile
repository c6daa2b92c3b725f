PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite also proves Looper's files against their real consumers (PEFT, transformers,
# mini-swe-agent: the `interop` extra, torch CPU included); where that extra cannot be
# installed those tests skip and say why.
TEST_STAMP := $(VENV)/.installed-interop
# mlx's CPU wheel ships a slow reference BLAS; where Debian's OpenBLAS is installed
# (apt-get install libopenblas0-pthread), preloading it makes LoRA training ~20x faster.
OPENBLAS := $(wildcard /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3)
RUNENV := $(if $(OPENBLAS),env LD_PRELOAD=$(OPENBLAS),)

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,mlx]'
	touch $(STAMP)

run: $(STAMP)
	$(RUNENV) $(BIN)/looper $(ARGS)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,mlx,interop]' \
	  || echo "make: the interop extra did not install; the tests that need PEFT, transformers or mini-swe-agent skip" >&2
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(RUNENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check looper_engine looper_tui tests bench

bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(RUNENV) $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
