#!/usr/bin/env bash
# Starts a throwaway 389 Directory Server for tests (Debian bookworm 389-ds-base 2.3), no systemd, no dscreate.
# Usage: BASE=$(mktemp -d)/ds PORT=38900 389ds-up.sh        (BASE: a fresh dir; it is wiped)
# Env:   BASE (required), PORT (required), ROOTPW (default "secret"; dscreate would refuse < 8 chars,
#        so the instance is built from the package's template-dse.ldif instead),
#        DS_RI=0 to leave referential integrity off (389-ds's default; on here, as most sites run it).
# Result: suffix dc=example,dc=com (entry dc=example + ou=people + ou=groups), root DN
#        "cn=Directory Manager" / $ROOTPW, listening on 127.0.0.1:$PORT only (no TLS),
#        plugins on: Retro Changelog (nsuniqueid:targetUniqueId), Content Synchronization (RFC 4533),
#        referential integrity (synchronous), entryUUID (declared before the first start, so every
#        entry gets one). No LDAPI socket, no LDAPS port.
#        The server runs as root (nsslapd-localuser root) so it can live under a 0700 temp dir.
#        The server PID goes to $BASE/pid. Stop: 389ds-down.sh (or kill "$(cat $BASE/pid)").
# Prints nothing on success; on failure prints why (and the error log's tail) and exits non-zero.
# Measured here (2 cores): ~1.2 s from nothing to answering (~4.7 s when it first stops an instance
# already in BASE), after the one-time apt-get install of 389-ds-base (~80 s).
set -euo pipefail
BASE=${BASE:?set BASE}
PORT=${PORT:?set PORT}
ROOTPW=${ROOTPW:-secret}
SUFFIX="dc=example,dc=com"
ROOTDN="cn=Directory Manager"
TPL=/usr/share/dirsrv/data

fail() { echo "389ds-up: $*" >&2; [ -f "$BASE/log/errors" ] && tail -n 15 "$BASE/log/errors" >&2; exit 1; }

if ! command -v ns-slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/ns-slapd ]; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q 389-ds-base ldap-utils >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q 389-ds-base ldap-utils >/dev/null 2>&1; }; } ||
    fail "apt-get install 389-ds-base failed"
fi
command -v ldapadd >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q ldap-utils >/dev/null 2>&1 || fail "apt-get install ldap-utils failed"; }
NS_SLAPD=$(command -v ns-slapd || echo /usr/sbin/ns-slapd)
[ -f "$TPL/template-dse.ldif" ] || fail "no $TPL/template-dse.ldif (389-ds-base not installed?)"

# a previous instance of *this* test server (by its pid file) is stopped first
if [ -f "$BASE/pid" ]; then
  old=$(cat "$BASE/pid")
  kill "$old" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
rm -rf "$BASE"
mkdir -p "$BASE"/{config/schema,db,log,run,lock,bak,ldif,tmp,certs}

HASH=$(/usr/bin/pwdhash "$ROOTPW") || fail "pwdhash failed"
# the template uses %name% placeholders, one per line
sed -e "s|%schema_dir%|$BASE/config/schema|g" -e "s|%lock_dir%|$BASE/lock|g" -e "s|%tmp_dir%|$BASE/tmp|g" \
    -e "s|%cert_dir%|$BASE/certs|g" -e "s|%ldif_dir%|$BASE/ldif|g" -e "s|%bak_dir%|$BASE/bak|g" \
    -e "s|%run_dir%|$BASE/run|g" -e "s|%inst_dir%|$BASE|g" -e "s|%log_dir%|$BASE/log|g" \
    -e "s|%fqdn%|localhost|g" -e "s|%ds_port%|$PORT|g" -e "s|%ds_user%|root|g" -e "s|%rootdn%|$ROOTDN|g" \
    -e "s|%ds_passwd%|$HASH|g" -e "s|%ds_suffix%|$SUFFIX|g" -e "s|%config_dir%|$BASE/config|g" \
    -e "s|%db_dir%|$BASE/db|g" -e "s|%db_home_dir%|$BASE/db|g" -e "s|%db_lib%|bdb|g" \
    -e "s|%ldapi_enabled%|off|g" -e "s|%ldapi%|$BASE/run/ldapi|g" -e "s|%ldapi_autobind%|off|g" \
    "$TPL/template-dse.ldif" > "$BASE/config/dse.ldif.tmp"
grep -q '%[a-z_]*%' "$BASE/config/dse.ldif.tmp" && fail "unsubstituted placeholders: $(grep -o '%[a-z_]*%' "$BASE/config/dse.ldif.tmp" | sort -u | tr '\n' ' ')"

# cn=config tweaks, plugins on, then the backend for the suffix (template-suffix-db.ldif)
python3 - "$BASE/config/dse.ldif.tmp" "$BASE/config/dse.ldif" "$BASE" "${DS_RI:-1}" <<'PY'
import sys
src, dst, base, ri = sys.argv[1:5]
blocks = open(src).read().split("\n\n")
out = []
for b in blocks:
    first = b.strip().splitlines()[0].lower() if b.strip() else ""
    if first == "dn: cn=config":
        b = b.rstrip("\n") + ("\nnsslapd-listenhost: 127.0.0.1\nnsslapd-security: off\n"
             "nsslapd-accesslog-logbuffering: on\nnsslapd-auditlog-logging-enabled: off\n")
    elif first in ("dn: cn=retro changelog plugin,cn=plugins,cn=config",
                   "dn: cn=content synchronization,cn=plugins,cn=config") or (
            ri != "0" and first == "dn: cn=referential integrity postoperation,cn=plugins,cn=config"):
        b = b.replace("nsslapd-pluginenabled: off", "nsslapd-pluginenabled: on")
        if "retro" in first:
            b = b.rstrip("\n") + ("\nnsslapd-attribute: nsuniqueid:targetUniqueId\n"
                                  f"nsslapd-changelogdir: {base}/db/changelogdb\nnsslapd-changelogmaxage: 2d\n"
                                  "nsslapd-include-suffix: dc=example,dc=com\n")
    out.append(b.strip("\n"))
# entryUUID: the server adds these two plugin entries on its first start but only loads them on the
# next one, so entries added in between would have no entryUUID; declaring them up front avoids that.
for name, typ in (("entryuuid", "betxnpreoperation"), ("entryuuid_syntax", "syntax")):
    if not any(x.lower().startswith(f"dn: cn={name},cn=plugins,cn=config\n") for x in out):
        out.append(f"dn: cn={name},cn=plugins,cn=config\nobjectClass: top\nobjectClass: nsSlapdPlugin\n"
                   f"cn: {name}\nnsslapd-pluginPath: lib{name.replace('_', '-')}-plugin\n"
                   f"nsslapd-pluginInitfunc: {name}_plugin_init\nnsslapd-pluginType: {typ}\n"
                   f"nsslapd-pluginEnabled: on\nnsslapd-pluginId: {name}\nnsslapd-pluginVersion: none\n"
                   f"nsslapd-pluginVendor: 389 Project\nnsslapd-pluginDescription: {name}")
open(dst, "w").write("\n\n".join(x for x in out if x) + "\n\n")
PY
sed -e "s|%ds_bename%|userRoot|g" -e "s|%ds_suffix%|$SUFFIX|g" -e "s|%db_dir%|$BASE/db|g" \
    "$TPL/template-suffix-db.ldif" | grep -v '^#' >> "$BASE/config/dse.ldif"
rm -f "$BASE/config/dse.ldif.tmp"
cp /etc/dirsrv/schema/* "$BASE/config/schema/" 2>/dev/null || true
cp /etc/dirsrv/config/slapd-collations.conf /etc/dirsrv/config/certmap.conf "$BASE/config/"

# daemonizes; the server writes its own pid file
"$NS_SLAPD" -D "$BASE/config" -i "$BASE/run/slapd.pid" >"$BASE/log/startup.out" 2>&1 || fail "ns-slapd did not start: $(tail -3 "$BASE/log/startup.out")"
for _ in $(seq 200); do [ -s "$BASE/run/slapd.pid" ] && break; sleep 0.05; done
[ -s "$BASE/run/slapd.pid" ] || fail "no pid file after 10 s"
cp "$BASE/run/slapd.pid" "$BASE/pid"
ok=""
for _ in $(seq 300); do
  if ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -s base -b "" vendorVersion >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$(cat "$BASE/pid")" 2>/dev/null || fail "ns-slapd exited during startup"
  sleep 0.05
done
[ -n "$ok" ] || fail "ns-slapd not answering on 127.0.0.1:$PORT after 15 s"

ldapadd -x -H "ldap://127.0.0.1:$PORT" -D "$ROOTDN" -w "$ROOTPW" >"$BASE/log/base-entries.out" 2>&1 <<EOF || fail "adding the base entries failed: $(tail -3 "$BASE/log/base-entries.out")"
dn: $SUFFIX
objectClass: top
objectClass: domain
dc: example

dn: ou=people,$SUFFIX
objectClass: top
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: top
objectClass: organizationalUnit
ou: groups
EOF
exit 0
