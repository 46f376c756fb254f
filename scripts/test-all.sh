#!/usr/bin/env bash
# Runs every test of orch: formatting, clippy, all Rust tests, the Python package tests and the
# notebooks. Installs what it needs: Debian packages with apt-get (etcd for the etcd storage
# tests, protoc to build its client) and a venv under .venv with pinned Python packages.
# Usage: scripts/test-all.sh            (ORCH_SLOW=1 also runs the slow end-to-end suites)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n== %s ==\n' "$*"; }

step "Debian packages"
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v protoc >/dev/null || need+=(protobuf-compiler)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]}: run as root, or install them with apt-get first" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "etcd $(etcd --version | head -1 | awk '{print $3}'), $(protoc --version)"

step "Python venv"
python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r bindings-python/requirements-dev.txt

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Once more with the optional features (the etcd storage backend).
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (workspace)"
cargo build -p orch --bin orch --features etcd
export ORCH_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/orch"
if [ "${ORCH_SLOW:-0}" = "1" ]; then
  cargo test --workspace --all-features -- --include-ignored
else
  cargo test --workspace --all-features
fi

if [ -f bindings-python/pyproject.toml ]; then
  step "Python package"
  python -m pip install --quiet ./bindings-python
  if [ -d bindings-python/tests ]; then
    python -m pytest -q bindings-python/tests
  fi
  if ls notebooks/*.ipynb >/dev/null 2>&1; then
    step "notebooks"
    python -m pytest -q --nbmake notebooks
  fi
fi
echo "all tests passed"
