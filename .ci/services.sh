#!/usr/bin/env bash
# Install the OS services the scale-out tests start on loopback (tests/support/services.py):
# PostgreSQL 15 (Airflow metadata database) and Redis (Celery broker). Idempotent: when the
# binaries are already there it only checks and returns, so .ci/run can call it every time.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The Debian cluster tools put initdb/pg_ctl/postgres here, outside PATH.
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
# Headless Chromium renders the coverage report in tests/workbench (Debian's build, no download).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    echo "services.sh: redis-server, postgresql-15 and chromium already installed"
    exit 0
fi

echo "services.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps the install small; the tests start their own throwaway
# server processes, so the packaged init scripts and default clusters stay unused.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v redis-server >/dev/null
[ -x /usr/lib/postgresql/15/bin/initdb ]
command -v chromium >/dev/null
echo "services.sh: done"
