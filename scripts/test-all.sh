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
command -v nft >/dev/null || need+=(nftables) # the service proxy (tests/proxy_e2e.rs)
# The cri runtime's end-to-end test (tests/cri_e2e.rs): containerd + runc, the CNI plugins
# (portmap needs iptables), and the static busybox the test images are built from.
command -v containerd >/dev/null || need+=(containerd runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
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

# No incremental compilation: a test run builds everything once, and the incremental caches
# of every test binary took more than 10 GB beside the binaries themselves.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Once more with the optional features (the etcd storage backend).
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (workspace)"
cargo build -p orch --bin orch --features etcd,cri
export ORCH_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/orch"
if [ "${ORCH_SLOW:-0}" = "1" ]; then
  cargo test --workspace --all-features -- --include-ignored
else
  cargo test --workspace --all-features
fi

step "fuzz (bounded)"
# The cargo-fuzz targets in fuzz/ (docs/design/fuzzing.md), each run ORCH_FUZZ_SECONDS (default
# 30) from a scratch copy of the repo's corpus; any crash fails the run. cargo-fuzz passes
# nightly `-Z` flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them. Built `--dev`
# (opt-level 1, see fuzz/Cargo.toml) without AddressSanitizer (orch-types and orch-apiserver have no `unsafe`) so a
# cold build stays short; docs/design/fuzzing.md has the longer runs.
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$cargo_fuzz_version" ]; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
fuzz_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
fuzz_scratch=$(mktemp -d)
time RUSTC_BOOTSTRAP=1 cargo fuzz build --dev --sanitizer none --target-dir "$fuzz_dir"
for t in $(cargo fuzz list); do
  case $t in
    quantity) max_len=64 dict=quantity ;;
    label_selector | field_selector) max_len=512 dict=selector ;;
    decode_protobuf) max_len=4096 dict= ;;
    *) max_len=4096 dict=json ;;
  esac
  cp -r "fuzz/corpus/$t" "$fuzz_scratch/$t"
  mkdir -p "$fuzz_scratch/artifacts/$t"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --dev --sanitizer none --target-dir "$fuzz_dir" "$t" \
    "$fuzz_scratch/$t" -- -max_total_time="${ORCH_FUZZ_SECONDS:-30}" -max_len="$max_len" \
    -timeout=10 -artifact_prefix="$fuzz_scratch/artifacts/$t/" \
    ${dict:+-dict="$root/fuzz/dicts/$dict.dict"} >"$fuzz_scratch/$t.log" 2>&1; then
    tail -n 60 "$fuzz_scratch/$t.log" >&2
    echo "fuzz target $t failed; its input is in $fuzz_scratch/artifacts/$t" >&2
    exit 1
  fi
  echo "$t: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$fuzz_scratch/$t.log" | tail -n 1)"
done
rm -rf "$fuzz_scratch"

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
