# Two commands do all the set-up:  `make course` (start the course)  and  `make test`.
# Both create a local virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Install the CPU build of torch first: a looser spec pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PORT ?= 8888
# Extra `jupyter lab` arguments, e.g. `make course LAB_ARGS=--no-browser`.
LAB_ARGS ?=
# The learner's Lab (self-study): no instructor tools (formgrader, create assignment), no
# Assignments/Courses tabs (no course exchange here), no news pop-up; Validate stays. These
# config files come first on the config path, ahead of the venv's (sys-prefix) ones.
LEARNER_CONFIG := $(abspath jupyter/learner)
# The edition: `make course COURSE_LANG=ja` opens the Japanese notebooks (course/ja/) in a
# Japanese JupyterLab (jupyter/learner-ja/: the ja-JP language pack's locale), and the course's
# messages are in Japanese (ATTNLAB_LANG).
COURSE_LANG ?= en
ifeq ($(COURSE_LANG),ja)
COURSE_ROOT := course/ja
LEARNER_CONFIG := $(abspath jupyter/learner-ja):$(LEARNER_CONFIG)
LANG_ENV := ATTNLAB_LANG=ja
else ifeq ($(COURSE_LANG),en)
COURSE_ROOT := course
LANG_ENV :=
else
$(error COURSE_LANG=$(COURSE_LANG): expected en or ja)
endif
# JupyterLab refuses to start as root (containers, CI) unless told it may.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: course test check test-triton-oldest build lint clean

$(VENV)/.course-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[triton,models]"
	touch $@

$(VENV)/.dev-installed: $(VENV)/.course-installed
	$(PY) -m pip install -e ".[triton,models,dev]"
	touch $@

## Start JupyterLab on course/ (installs everything into .venv first); COURSE_LANG=ja: course/ja/.
course: $(VENV)/.course-installed
	$(if $(filter ja,$(COURSE_LANG)),./tools/ensure_system_packages.sh fonts)
	$(LANG_ENV) PATH="$(abspath $(VENV))/bin:$$PATH" JUPYTER_CONFIG_PATH="$(LEARNER_CONFIG)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(COURSE_ROOT) --port=$(PORT) $(ALLOW_ROOT) $(LAB_ARGS)

## Install what the tests need and run the whole suite: `make check` first (lint and the fast
## tests, so a slip fails in a minute), then the slow tests (sandboxes, browsers, a JupyterHub).
test: $(VENV)/.dev-installed
	./tools/ensure_system_packages.sh
	$(MAKE) check
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -n 2 --dist worksteal -m slow --durations=30

## The Triton tests again with the oldest Triton that pyproject's triton extra allows (CI step):
## installed on its own into $(VENV)/triton-$(TRITON_OLDEST), which shadows .venv's on PYTHONPATH.
TRITON_OLDEST ?= 3.6.0
test-triton-oldest: $(VENV)/.dev-installed
	test -d $(VENV)/triton-$(TRITON_OLDEST)/triton || $(PY) -m pip install --no-deps --target $(VENV)/triton-$(TRITON_OLDEST) "triton==$(TRITON_OLDEST)"
	PYTHONPATH="$(abspath $(VENV))/triton-$(TRITON_OLDEST)" $(PY) -c "import triton; assert triton.__version__ == '$(TRITON_OLDEST)', triton.__version__"
	PYTHONPATH="$(abspath $(VENV))/triton-$(TRITON_OLDEST)" $(PY) -m pytest tests/test_flash_triton.py

## Rebuild course/ (and the Japanese course/ja/) from the jupytext sources in solutions/.
build: $(VENV)/.course-installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) tools/build_course.py

## Quick checks before a commit: ruff (lint, formatting) and the tests not marked slow.
check: lint
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -n 2 -q -m "not slow"

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check lib grader_tests tests tools bench
	$(VENV)/bin/ruff format --check lib grader_tests tests tools bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts solutions/*/*.ipynb
