#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh
# machine (Debian's chromium for the HTML report test, Microsoft's Graph SDK
# for Python in a virtual environment for the simulator conformance test),
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing chromium (Debian)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "test.sh: could not install chromium; the HTML render test will fail" >&2
  fi
fi

venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import msgraph' 2>/dev/null; then
  echo "test.sh: installing msgraph-sdk into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/sdk/requirements.txt
fi
export CLOSEOUT_SDK_PYTHON="$PWD/$venv/bin/python"

cargo test --workspace --no-fail-fast -- --test-threads="${CLOSEOUT_TEST_THREADS:-2}"
