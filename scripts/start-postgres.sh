#!/usr/bin/env bash
# Make a local PostgreSQL server available for the multi-worker storage tests (idempotent).
# Installs Debian's postgresql if missing, starts the cluster, creates role/database piip/piip_test.
# Prints the storage URL the tests use (PIIP_SEARCH_PG_URL).
set -euo pipefail
URL="postgresql://piip:piip@127.0.0.1:5432/piip_test"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing postgresql (Debian package)..." >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
  ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  $SUDO pg_createcluster "$ver" main >&2
fi
read -r ver name _ <<<"$(pg_lsclusters -h | head -1)"
if ! pg_lsclusters -h | head -1 | grep -q online; then
  $SUDO pg_ctlcluster "$ver" "$name" start >&2
fi
for _ in $(seq 1 30); do
  if $SUDO -u postgres psql -qtAc "select 1" >/dev/null 2>&1 || su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
psql_pg() { if [ -n "$SUDO" ]; then sudo -u postgres psql -qtAc "$1"; else su postgres -c "psql -qtAc \"$1\""; fi; }
if [ "$(psql_pg "select 1 from pg_roles where rolname='piip'")" != "1" ]; then
  psql_pg "create role piip login password 'piip'" >&2
fi
if [ "$(psql_pg "select 1 from pg_database where datname='piip_test'")" != "1" ]; then
  psql_pg "create database piip_test owner piip" >&2
fi
echo "$URL"
