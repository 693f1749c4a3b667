#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the tests and the benchmarks.
#
#   scripts/postgres.sh start DIR   initdb in DIR (if new), start on a free 127.0.0.1 port, and
#                                   print the URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   scripts/postgres.sh stop DIR    stop the cluster (fast shutdown)
#
# Debian's initdb and pg_ctl refuse to run as root: as root they run as the `postgres` user
# (runuser), which owns DIR. fsync and synchronous_commit stay on: the figures measured on this
# cluster are durable ones. Exits 2, saying why on stderr, when PostgreSQL is not installed.
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}

bin=""
if command -v pg_ctl >/dev/null 2>&1; then
  bin=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
else
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bin=$d; done
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres.sh: PostgreSQL is not installed (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin)" >&2
  exit 2
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir.initdb.log" 2>&1 || {
      cat "$dir.initdb.log" >&2
      exit 1
    }
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on -c synchronous_commit=on" \
    start >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  [ -f "$dir/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
  ;;
*)
  echo "usage: postgres.sh start|stop DIR" >&2
  exit 64
  ;;
esac
