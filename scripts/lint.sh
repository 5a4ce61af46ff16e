#!/usr/bin/env bash
# Python lint and format check (ruff, configured in pyproject.toml): what CI runs. Fix locally with
#   ruff format . && ruff check --fix .
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
