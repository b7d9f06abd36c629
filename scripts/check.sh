#!/usr/bin/env bash
# Every check of the test command: lint, format, types, import contracts, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${KAPMONITOR_VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"
export QT_QPA_PLATFORM=offscreen
export PYTHONDONTWRITEBYTECODE=1

step() { printf '\n== %s\n' "$*"; }

step "ruff (lint, incl. the ban on direct clock reads outside kapmonitor/clock.py)"
ruff check .
step "ruff format --check"
ruff format --check .
step "mypy --strict"
mypy
step "import-linter (layers and forbidden imports of design.md)"
lint-imports
step "pytest (offscreen Qt, warnings are errors)"
pytest "$@"
