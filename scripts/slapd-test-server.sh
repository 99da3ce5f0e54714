#!/usr/bin/env bash
# Starts a throwaway OpenLDAP slapd for tests and benchmarks: its own folder,
# loopback only, mdb backend with syncprov and memberof, a test CA and a
# server certificate signed by it (for LDAPS and StartTLS), no size limits
# for the admin. It daemonizes; stop it with: kill "$(cat "$BASE/run/slapd.pid")"
#
# Env: BASE (a fresh folder, required), PORT, TLSPORT (required),
#      DATA_LDIF (optional: bulk-loaded offline with slapadd before start),
#      EXTRA_DB_CONFIG (optional: more olc* lines for the mdb database, e.g. olcLimits/olcAccess),
#      NO_SYNCPROV=1 (optional: no syncprov overlay and no syncprov module: a server without RFC 4533),
#      ROOTPW (default "secret").
set -euo pipefail
BASE=${BASE:?set BASE to a fresh folder}
PORT=${PORT:?set PORT}
TLSPORT=${TLSPORT:?set TLSPORT}
SUFFIX="dc=example,dc=com"
ROOTDN="cn=admin,$SUFFIX"
ROOTPW=${ROOTPW:-secret}
SLAPD=$(command -v slapd || echo /usr/sbin/slapd)
SLAPADD=$(command -v slapadd || echo /usr/sbin/slapadd)
[ -x "$SLAPD" ] || { echo "slapd is not installed (apt-get install slapd ldap-utils)" >&2; exit 1; }

mkdir -p "$BASE"/{conf,data,run,tls}

# A test CA and a server certificate for 127.0.0.1 / localhost signed by it.
( cd "$BASE/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=dirsync test CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout key.pem -out server.csr 2>/dev/null
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" > ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile ext.cnf -out cert.pem 2>/dev/null
  chmod 600 key.pem )

EXTRA=""
[ -n "${EXTRA_DB_CONFIG:-}" ] && EXTRA="$(printf '%s\n' "$EXTRA_DB_CONFIG" | sed '/^$/d')
"
cat > "$BASE/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $BASE/run/slapd.pid
olcArgsFile: $BASE/run/slapd.args
olcLogLevel: none
olcTLSCACertificateFile: $BASE/tls/ca.pem
olcTLSCertificateFile: $BASE/tls/cert.pem
olcTLSCertificateKeyFile: $BASE/tls/key.pem

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: syncprov
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
include: file:///etc/ldap/schema/nis.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config
olcRootPW: $ROOTPW

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcRootDN: $ROOTDN
olcRootPW: $ROOTPW
olcDbDirectory: $BASE/data
olcDbMaxSize: 8589934592
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: entryCSN,entryUUID eq
olcDbIndex: uid,cn,mail eq
olcDbIndex: member,memberUid eq
olcSizeLimit: 500
${EXTRA}olcAccess: to attrs=userPassword by self write by anonymous auth by * none
olcAccess: to * by * read

dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpCheckpoint: 100 10
olcSpSessionLog: 100000

dn: olcOverlay={1}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {1}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
LDIF

if [ -n "${NO_SYNCPROV:-}" ]; then
  # drop the overlay's entry and the module; memberof becomes overlay {0}
  awk 'BEGIN { RS = ""; ORS = "\n\n" } !/olcOverlay=\{0\}syncprov/' "$BASE/config.ldif" |
    sed -e '/^olcModuleLoad: syncprov$/d' -e 's/{1}memberof/{0}memberof/g' > "$BASE/config.ldif.new"
  mv "$BASE/config.ldif.new" "$BASE/config.ldif"
fi
"$SLAPADD" -n 0 -F "$BASE/conf" -l "$BASE/config.ldif" >/dev/null
if [ -n "${DATA_LDIF:-}" ]; then
  "$SLAPADD" -q -w -n 1 -F "$BASE/conf" -l "$DATA_LDIF" >/dev/null
fi
"$SLAPD" -F "$BASE/conf" -h "ldap://127.0.0.1:$PORT/ ldaps://127.0.0.1:$TLSPORT/"
for _ in $(seq 200); do
  ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -s base -b "" namingContexts >/dev/null 2>&1 && break
  sleep 0.05
done
ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -s base -b "" namingContexts >/dev/null

if [ -z "${DATA_LDIF:-}" ]; then
  ldapadd -x -H "ldap://127.0.0.1:$PORT" -D "$ROOTDN" -w "$ROOTPW" >/dev/null <<LDIF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups
LDIF
fi
echo "slapd $(cat "$BASE/run/slapd.pid") ldap://127.0.0.1:$PORT ldaps://127.0.0.1:$TLSPORT"
