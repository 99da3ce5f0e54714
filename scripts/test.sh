#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (OpenLDAP's slapd and
# ldap-utils, Samba's AD DC, 389 Directory Server, PostgreSQL, openssl,
# systemd's systemd-analyze, python3-venv, chromium and chromium-driver)
# from Debian's packages when missing, and Schemathesis and scim2-tester
# from PyPI into target/schemathesis-venv and target/scim2-tester-venv; the
# tests start their own servers on loopback, in temp dirs, and stop them
# (slapd on free ports; one Samba AD DC on its fixed ports 389/636/88).
# One throwaway PostgreSQL cluster serves the whole run (each test makes
# its own database on it) and is stopped at the end. The end-to-end
# scenarios then run a second time on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/sbin/slapd ] || command -v slapd >/dev/null 2>&1 || need+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || need+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# 389 Directory Server (tests/it/ds389.rs builds an instance by hand, no systemd).
{ [ -x /usr/sbin/ns-slapd ] && [ -f /usr/share/dirsrv/data/template-dse.ldif ]; } || need+=(389-ds-base)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The PostgreSQL store (scripts/pg-test-server.sh: initdb and pg_ctl, no systemd).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 || need+=(postgresql postgresql-client)
# The admin page's browser test (tests/it/page_browser.rs): headless Chromium over WebDriver.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# Schemathesis and scim2-tester (PyPI) run in virtualenvs of their own
# (tests/it/schemathesis.rs, tests/it/scim.rs).
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The program source's fixtures: a C sample built with cc, shell samples using
# awk; the Unix source's NSS test makes accounts with useradd/groupadd.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v awk >/dev/null 2>&1 || need+=(mawk)
command -v useradd >/dev/null 2>&1 || [ -x /usr/sbin/useradd ] || need+=(passwd)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# samba-tool alone (samba-common-bin) is not enough: the AD DC daemon and its
# provisioning data are what the AD tests run.
if ! { [ -x /usr/sbin/samba ] && command -v samba-tool >/dev/null 2>&1 && [ -d /usr/share/samba/setup ]; }; then
  need+=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules ldb-tools)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing ${need[*]} (apt-get)" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >&2
fi
ST_VENV="$(pwd)/target/schemathesis-venv"
if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
  echo "installing schemathesis (pip, into $ST_VENV)" >&2
  python3 -m venv "$ST_VENV" >&2
  "$ST_VENV/bin/pip" install -q 'schemathesis==4.32.5' >&2
fi
export DIRSYNC_SCHEMATHESIS="$ST_VENV/bin/schemathesis"
# scim2-tester (PyPI) checks the SCIM endpoint (tests/scim_check.py); pinned.
SCIM_VENV="$(pwd)/target/scim2-tester-venv"
if [ ! -x "$SCIM_VENV/bin/python" ] || ! "$SCIM_VENV/bin/python" -c 'import scim2_tester, httpx2' 2>/dev/null; then
  echo "installing scim2-tester (pip, into $SCIM_VENV)" >&2
  python3 -m venv "$SCIM_VENV" >&2
  "$SCIM_VENV/bin/pip" install -q 'scim2-tester==0.5.2' 'scim2-client==0.13.2' 'scim2-models==0.12.3' 'httpx2==2.17.0' >&2
fi
export DIRSYNC_SCIM2_TESTER="$SCIM_VENV/bin/python"
export PATH="$PATH:/usr/sbin"
PG_BASE="$(mktemp -d)/pg"
chmod 755 "$(dirname "$PG_BASE")"  # the server runs as postgres when this runs as root
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'BASE="$PG_BASE" bash scripts/pg-test-server.sh stop; rm -rf "$(dirname "$PG_BASE")"' EXIT
BASE="$PG_BASE" PORT="$PG_PORT" bash scripts/pg-test-server.sh start
export DIRSYNC_TEST_PG="postgres://postgres:secret@127.0.0.1:$PG_PORT/postgres"
cargo test --all-targets
# The PostgreSQL leg: the end-to-end scenarios (syncs full and incremental,
# renames, guards, write-back, the API, the change feed, approval, JIT,
# SCIM, live sync and webhooks, undo)
# again with the store on PostgreSQL; the store suite ran on it above.
DIRSYNC_TEST_STORE=postgres cargo test --test it -- \
  sync:: incremental:: safety:: writeback:: serve:: serve_patch:: feed_mirror:: cloud_jit:: \
  early:: behaviours:: multi:: quick_start:: page:: scim:: live:: undo::
