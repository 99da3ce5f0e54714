#!/usr/bin/env python3
"""dirsync serve benchmark: GET /api/users/{name} for random users of a
100,000-user store, with wrk (installed with apt-get when missing), alone
and while a full 100,000-user sync runs; the reference in the same script
is GET /healthz on the same server (the HTTP floor: no store work).

Usage: python3 bench/serve_run.py [--users 100000] [--seconds 10] [--connections 32]

Everything runs here: data generation, a throwaway slapd, the release
binary, a first sync by the CLI, then `dirsync serve` on a free port. wrk
and dirsync share this machine's cores (2 here): the load generator's cost
is included, as the target says. Results go to stdout as Markdown."""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.request

from common import ROOT, build_release, serve_up, service_config, slapd_up, teardown

TOKEN = "bench-token-0123456789abcdef"

LUA = r'''
math.randomseed(os.time())
local n = %d
request = function()
  local i = math.random(0, n - 1)
  return wrk.format("GET", string.format("/api/users/user%%06d", i), {["Authorization"] = "Bearer %s"})
end
'''


def wrk(url, seconds, conns, script=None):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))

    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-serve-bench-")
    base = os.path.join(work, "slapd")
    data = os.path.join(work, "data.ldif")
    server = None
    try:
        with open(data, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_ldif.py"), str(a.users), "1000", "3"], stdout=f, check=True)
        url = slapd_up(base, data)
        fields = 'username = "uid"\nfull_name = "cn"\nemail = "mail"\ndepartment = "departmentNumber"\n'
        cfg, port = service_config(work, url, TOKEN, '["admin"]', "", "page_size = 1000\n", fields)
        subprocess.run([binary, "-c", cfg, "sync"], check=True, stdout=subprocess.DEVNULL)
        server, base_url = serve_up(binary, cfg, port)
        script = os.path.join(work, "users.lua")
        with open(script, "w") as f:
            f.write(LUA % (a.users, TOKEN))
        rows = []
        floor = wrk(base_url + "/healthz", a.seconds, a.connections)
        rows.append(("`GET /healthz` (reference: the HTTP floor)", floor))
        users = wrk(base_url, a.seconds, a.connections, script)
        rows.append(("`GET /api/users/{name}`, random users, store idle", users))
        # While full reads of every user run back to back for the whole window
        # (a thread queues the next as soon as the last one ended).
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        done, runs = threading.Event(), []

        def keep_syncing():
            while not done.is_set():
                req = urllib.request.Request(base_url + "/api/syncs", data=json.dumps({"full": True}).encode(), method="POST", headers=auth)
                run_id = json.load(urllib.request.urlopen(req))["run_id"]
                while True:
                    r = urllib.request.Request(base_url + f"/api/runs/{run_id}", headers=auth)
                    status = json.load(urllib.request.urlopen(r))["status"]
                    if status not in ("queued", "running"):
                        runs.append(status)
                        break
                    time.sleep(0.05)

        t = threading.Thread(target=keep_syncing)
        t.start()
        time.sleep(0.2)
        during = wrk(base_url, a.seconds, a.connections, script)
        done.set()
        t.join()
        rows.append((f"`GET /api/users/{{name}}` while full {a.users:,}-user syncs run back to back ({len(runs)} runs: {', '.join(sorted(set(runs)))})", during))
        print(f"users={a.users} seconds={a.seconds} connections={a.connections} (wrk -t2, same machine)\n")
        print("| load | requests/s | × /healthz | p99 (ms) | non-2xx |")
        print("|---|---:|---:|---:|---:|")
        for name, (rps, p99, bad) in rows:
            print(f"| {name} | {rps:,.0f} | {rps / floor[0]:.2f} | {p99:.2f} | {bad} |")
    finally:
        teardown(server, base, work)


if __name__ == "__main__":
    main()
