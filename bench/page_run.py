#!/usr/bin/env python3
"""dirsync admin page benchmark: how long the dashboard and a user search
take to render on a 100,000-user store (the issue's target: under 100 ms
server-side), timed on loopback from request to last byte, median and max
of --reps requests each; the reference in the same script is GET /healthz
(the HTTP floor) on the same server.

Usage: python3 bench/page_run.py [--users 100000] [--reps 20]"""
import argparse, http.cookiejar, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request

from common import ROOT, build_release, serve_up, service_config, slapd_up, teardown

TOKEN = "bench-token-0123456789abcdef"
PASSWORD = "bench-admin-password-0123"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-page-bench-")
    base = os.path.join(work, "slapd")
    data = os.path.join(work, "data.ldif")
    server = None
    try:
        with open(data, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_ldif.py"), str(a.users), "1000", "3"], stdout=f, check=True)
        url = slapd_up(base, data)
        subprocess.run([binary, "admin-password", os.path.join(work, "admin.hash")], input=PASSWORD + "\n", text=True,
                       check=True, stdout=subprocess.DEVNULL)
        fields = 'username = "uid"\nfull_name = "cn"\nemail = "mail"\n'
        cfg, port = service_config(work, url, TOKEN, '["admin"]', '[server.admin]\npassword_file = "admin.hash"\n',
                                   "page_size = 1000\n", fields)
        subprocess.run([binary, "-c", cfg, "sync"], check=True, stdout=subprocess.DEVNULL)
        server, base_url = serve_up(binary, cfg, port)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = opener.open(base_url + "/login").read().decode()
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, "username": "admin", "password": PASSWORD}).encode()
        page = opener.open(base_url + "/login", data=body).read().decode()
        assert "Dashboard" in page, "signed in"

        def timed(path):
            times = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                opener.open(base_url + path).read()
                times.append((time.perf_counter() - t0) * 1000)
            return statistics.median(times), max(times)

        rows = [
            ("`GET /healthz` (reference: the HTTP floor)", timed("/healthz")),
            ("dashboard (`/`)", timed("/")),
            ("user search (`/ui/users?q=user0500`)", timed("/ui/users?q=user0500")),
            ("users, first page (`/ui/users`)", timed("/ui/users")),
            (f"a user's page (`/ui/users/user{a.users // 2:06d}`)", timed(f"/ui/users/user{a.users // 2:06d}")),
            ("runs (`/ui/runs`)", timed("/ui/runs")),
        ]
        print(f"users={a.users} reps={a.reps} (loopback, request to last byte)\n")
        print("| page | median (ms) | max (ms) |")
        print("|---|---:|---:|")
        for name, (med, mx) in rows:
            print(f"| {name} | {med:.2f} | {mx:.2f} |")
    finally:
        teardown(server, base, work)


if __name__ == "__main__":
    main()
