#!/usr/bin/env python3
"""dirsync serve benchmark: POST /api/auth (right passwords, random users)
with wrk, against the reference in the same script: raw simple binds as
random users on persistent connections (examples/rawbind.rs, the same ldap3
client), at the same concurrency, against the same slapd.

Usage: python3 bench/auth_run.py [--users 10000] [--seconds 10] [--connections 8]

Everything (slapd, dirsync, wrk or rawbind) shares this machine's 2 cores.
Results go to stdout as Markdown."""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

from common import ROOT, SUFFIX, build_release, serve_up, service_config, slapd_up, teardown
from serve_run import wrk

TOKEN = "bench-token-0123456789abcdef"

LUA = r'''
math.randomseed(os.time())
local n = %d
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer %s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local u = string.format("user%%06d", math.random(0, n - 1))
  return wrk.format(nil, "/api/auth", nil, string.format('{"username":"%%s","password":"pw-%%s"}', u, u))
end
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--perf", action="store_true", help="profile dirsync with perf during the wrk run")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    binary = build_release()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "rawbind"], cwd=ROOT, check=True)
    rawbind = os.path.join(ROOT, "target", "release", "examples", "rawbind")
    work = tempfile.mkdtemp(prefix="dirsync-auth-bench-")
    base = os.path.join(work, "slapd")
    data = os.path.join(work, "data.ldif")
    server = None
    try:
        with open(data, "w") as f:
            f.write(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n")
            f.write(f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n")
            for i in range(a.users):
                u = f"user{i:06d}"
                f.write(f"dn: uid={u},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {u}\ncn: User {i}\nsn: {i}\nuserPassword: pw-{u}\n\n")
        url = slapd_up(base, data)
        cfg, port = service_config(work, url, TOKEN, '["auth"]', "[server.auth]\nfailures_per_address = 100000\n", 'group_filter = ""\n')
        subprocess.run([binary, "-c", cfg, "sync"], check=True, stdout=subprocess.DEVNULL)
        raw = float(subprocess.run([rawbind, url, str(a.users), str(a.connections), str(a.seconds)], check=True,
                                   capture_output=True, text=True).stdout.strip())
        server, base_url = serve_up(binary, cfg, port)
        script = os.path.join(work, "auth.lua")
        with open(script, "w") as f:
            f.write(LUA % (a.users, TOKEN))
        perf = None
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", os.path.join(work, "perf.data"), "-p", str(server.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rps, p99, bad = wrk(base_url, a.seconds, a.connections, script)
        if perf:
            perf.send_signal(2)
            perf.wait()
            report = subprocess.run(["perf", "report", "--stdio", "--no-children", "--sort", "dso,sym", "-i", os.path.join(work, "perf.data")],
                                    capture_output=True, text=True).stdout
            print("\n".join(l for l in report.splitlines() if l.strip().startswith(tuple("0123456789")))[:4000])
        print(f"users={a.users} seconds={a.seconds} connections={a.connections} (same machine)\n")
        print("| load | per second | × raw binds | p99 (ms) | non-2xx |")
        print("|---|---:|---:|---:|---:|")
        print(f"| raw simple binds, random users, {a.connections} persistent connections (reference) | {raw:,.0f} | 1.00 | – | – |")
        print(f"| `POST /api/auth`, random users, right passwords, {a.connections} HTTP connections | {rps:,.0f} | {rps / raw:.2f} | {p99:.2f} | {bad} |")
    finally:
        teardown(server, base, work)


if __name__ == "__main__":
    main()
