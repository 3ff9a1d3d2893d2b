#!/usr/bin/env bash
# tests/run.sh: install what the suite needs, build, and run every test:
# C unit tests and the integration suite, then both again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh all

run_suite() { # run_suite BUILD_DIR [meson options...]
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs
  PORTIER_BIN="$dir/proxy/portier" /usr/bin/python3 -m pytest -q -p no:cacheprovider --timeout=300 tests/integration
}

echo "== build and test (release) =="
run_suite build
echo "== build and test (address,undefined sanitizers) =="
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
