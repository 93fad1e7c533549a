#!/usr/bin/env bash
# Make sure the local Redis and PostgreSQL the tests use are running, and that Debian's
# chromium (the dashboard's browser tests) is installed; install them with apt-get on a
# machine that lacks them. Idempotent: does nothing when all are there.
set -euo pipefail

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
postgres_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "cannot install $* here (need root and apt-get)" >&2
    return 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi

if ! postgres_up; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 100); do postgres_up && break; sleep 0.1; done
  # Trust auth on loopback and a `test` database, as the tests expect.
  if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    hba=/etc/postgresql/$version/main/pg_hba.conf
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    su postgres -c "psql -tc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test"
  fi
fi

# The dashboard's tests drive Debian's chromium through Playwright (no browser download).
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi

redis_up || { echo "Redis is not running on 127.0.0.1:6379" >&2; exit 1; }
postgres_up || { echo "PostgreSQL is not running on 127.0.0.1:5432" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "chromium is not installed at /usr/bin/chromium" >&2; exit 1; }
echo "Redis and PostgreSQL are up, chromium is installed"
