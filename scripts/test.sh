#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (OpenLDAP's slapd and
# ldap-utils, openssl) from Debian's packages when missing; the tests start
# their own servers on loopback, on free ports, in temp dirs, and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/sbin/slapd ] || command -v slapd >/dev/null 2>&1 || need+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || need+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing ${need[*]} (apt-get)" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >&2
fi
export PATH="$PATH:/usr/sbin"
cargo test --all-targets
