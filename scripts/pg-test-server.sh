#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks: initdb in its own
# folder, loopback only, on the given port, with a password for the
# `postgres` user (scram) and, with TLS=1, a test CA and a server
# certificate for 127.0.0.1/localhost; with DURABLE=1, fsync and synchronous
# commits stay on (for a test that crashes the server and counts on what
# was committed). The server refuses to run as root,
# so as root it runs as the `postgres` user (runuser).
#
#   BASE=DIR PORT=N [TLS=1] scripts/pg-test-server.sh start
#   BASE=DIR scripts/pg-test-server.sh stop     (immediate: as a crash would)
#   BASE=DIR scripts/pg-test-server.sh resume   (start the stopped cluster again)
#
# Prints nothing on success; the superuser is postgres / PGPW (default "secret").
set -euo pipefail
BASE=${BASE:?set BASE to a fresh folder}
BIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$BIN/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-}" in
start)
  PORT=${PORT:?set PORT}
  mkdir -p "$BASE"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$BASE"
  printf '%s\n' "${PGPW:-secret}" >"$BASE/pw"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$BASE/pw"
  as_pg "$BIN/initdb" -D "$BASE/data" -U postgres --auth=scram-sha-256 --pwfile="$BASE/pw" -E UTF8 --no-locale >"$BASE/initdb.log"
  opts="-c listen_addresses=127.0.0.1 -p $PORT -k $BASE -c max_connections=200"
  # Speed over durability, unless the test crashes the server (DURABLE=1).
  [ "${DURABLE:-0}" = 1 ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [ "${TLS:-0}" = 1 ]; then
    ( cd "$BASE"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=dirsync pg test CA" -keyout ca.key -out ca.pem 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
        -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -extfile ext.cnf -out server.crt 2>/dev/null
      chmod 600 server.key
      [ "$(id -u)" -eq 0 ] && chown postgres: server.key server.crt ca.pem )
    opts="$opts -c ssl=on -c ssl_cert_file=$BASE/server.crt -c ssl_key_file=$BASE/server.key"
    # Only TLS connections over TCP: a client that does not encrypt is refused.
    printf 'local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n' >"$BASE/data/pg_hba.conf"
  fi
  printf '%s\n' "$opts" >"$BASE/opts"
  as_pg "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 30 -o "$opts" start >/dev/null
  ;;
resume)
  as_pg "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 30 -o "$(cat "$BASE/opts")" start >/dev/null
  ;;
stop)
  [ -f "$BASE/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$BASE/data" -m immediate -w stop >/dev/null || true
  ;;
*) echo "usage: $0 start|stop|resume" >&2; exit 2 ;;
esac
