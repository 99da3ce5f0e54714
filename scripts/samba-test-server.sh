#!/usr/bin/env bash
# Starts a throwaway Samba AD DC (Debian's samba 4.17) for tests: provisioned
# in a fresh folder (--use-rfc2307, no DNS), loopback only, simple binds
# allowed without TLS. Samba's ports are fixed (389, 636, 88, 135, 3268): one
# per machine, so the tests share one and say clearly when a port is taken.
#
# Env: D (a fresh folder, required), PW (the Administrator password),
#      WATCH_PID (optional: stop Samba when that process exits).
# Exit codes: 0 up; 2 samba not installed; 3 a port is taken; 1 other failure.
set -euo pipefail
D=${D:?set D to a fresh folder}
PW=${PW:-'Passw0rd!Test'}
command -v samba-tool >/dev/null 2>&1 || { echo "samba is not installed (apt-get install samba samba-ad-dc samba-ad-provision samba-dsdb-modules ldb-tools)" >&2; exit 2; }
for port in 389 636 88; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is taken: Samba AD needs ports 389, 636 and 88 (another Samba or LDAP server is running?)" >&2
    exit 3
  fi
done
mkdir -p "$D"
samba-tool domain provision --targetdir="$D" --use-rfc2307 --realm=EXAMPLE.COM --domain=EXAMPLE \
  --server-role=dc --dns-backend=NONE --host-name=dc1 --adminpass="$PW" \
  --option="interfaces = lo" --option="bind interfaces only = yes" >"$D/provision.log" 2>&1 \
  || { tail -20 "$D/provision.log" >&2; exit 1; }
# Only the services the tests need; simple bind without TLS.
sed -i -e 's|^\tserver services = .*|\tserver services = ldap, cldap, kdc, rpc\n\tldap server require strong auth = no|' \
       -e "s|^\tlog file = .*|\tlog file = $D/log.%m|" "$D/etc/smb.conf"
samba -i -M single -s "$D/etc/smb.conf" >"$D/samba-stdout.log" 2>&1 &
SPID=$!
echo "$SPID" > "$D/samba.pid"
for _ in $(seq 300); do
  ldapsearch -x -LLL -H ldap://127.0.0.1:389 -D Administrator@example.com -w "$PW" -b DC=example,DC=com -s base dn >/dev/null 2>&1 && break
  kill -0 "$SPID" 2>/dev/null || { tail -20 "$D/samba-stdout.log" >&2; exit 1; }
  sleep 0.1
done
ldapsearch -x -LLL -H ldap://127.0.0.1:389 -D Administrator@example.com -w "$PW" -b DC=example,DC=com -s base dn >/dev/null
if [ -n "${WATCH_PID:-}" ]; then
  ( while kill -0 "$WATCH_PID" 2>/dev/null; do sleep 1; done; kill "$SPID" 2>/dev/null ) >/dev/null 2>&1 &
  disown
fi
echo "samba $SPID ldap://127.0.0.1:389 ldaps://127.0.0.1:636"
