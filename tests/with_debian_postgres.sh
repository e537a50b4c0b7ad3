#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a throw-away Debian PostgreSQL 15 server.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PGBIN/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's postgresql-15 for the test run" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >/dev/null 2>&1 || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >/dev/null; }
  else
    echo "error: $PGBIN/initdb not found; install Debian's postgresql-15 (apt-get install postgresql-15)" >&2
    exit 1
  fi
fi

dir=$(mktemp -d /tmp/anime-pg15-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi

cleanup() {
  "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${as_pg[@]}" "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null

export DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
unset ANIME_TEST_ADMIN_URL
echo "Debian PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
"$@"
