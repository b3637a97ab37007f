#!/usr/bin/env bash
# One command on a fresh machine: install everything, then run the main job on samples/.
#
#   bash setup.sh            # OS services for the tests, .venv, the package, then
#                            # `babyconnect convert samples/ --out target/`
#
# Everything comes from the package registries (PyPI, Debian); nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    bash .ci/services.sh                 # PostgreSQL 15, Redis, Chromium for the test suite
else
    echo "setup.sh: not root; skipping OS packages (the scale-out and browser tests will skip)"
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,scale]"

echo
echo "== babyconnect convert samples/ --out target/"
set +e
.venv/bin/babyconnect convert samples/ --out target/
status=$?
set -e
# Exit 1 means "finished, some records quarantined": the samples hold broken records on purpose.
if [ "$status" -gt 1 ]; then
    exit "$status"
fi
echo
echo "setup.sh: done. Output in target/ (bundles/, ndjson/, quarantine/, report.json)."
