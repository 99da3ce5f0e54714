"""Graph source benchmark (issue 12): a fake Entra tenant of 100,000 users
and 1,000 groups served from memory on loopback (bench/graph_fake.py). Times
dirsync's first (full) sync and a delta sync after 1% changes, counts the
requests each made, and replays exactly those requests with one curl process
(keep-alive, sequential) as the reference: what fetching the same pages costs
without dirsync.

    python3 bench/graph_run.py [users] [groups]
"""
import json, os, subprocess, sys, tempfile, urllib.request
from common import ROOT, build_release, free_port, timed, wait_for

users = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
groups = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
binary = build_release()
port = free_port()
fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "graph_fake.py"), str(port), str(users), str(groups)])
base = f"http://127.0.0.1:{port}"
wait_for(base + "/v1.0/groups", tries=600)


def log():
    return json.load(urllib.request.urlopen(urllib.request.Request(base + "/_log", data=b"", method="POST")))


def replay(reqs, work):
    """One curl process, the same requests in order on one connection."""
    cfg = os.path.join(work, "curl.cfg")
    with open(cfg, "w") as f:
        for i, (method, path, body) in enumerate(reqs):
            if i:
                f.write("next\n")
            f.write(f'url = "{base}{path}"\noutput = "/dev/null"\nsilent\n')
            if method == "POST":
                data_file = os.path.join(work, f"body{i}")
                open(data_file, "w").write(body)
                ctype = "application/x-www-form-urlencoded" if path.endswith("/token") else "application/json"
                f.write(f'data-binary = "@{data_file}"\nheader = "Content-Type: {ctype}"\n')
            f.write('header = "Authorization: Bearer bench-token"\n')
    return timed(["curl", "-K", cfg])[0]


try:
    with tempfile.TemporaryDirectory() as work:
        open(os.path.join(work, "graph.secret"), "w").write("bench-secret\n")
        config = os.path.join(work, "dirsync.toml")
        open(config, "w").write(
            f'[store]\npath = "{work}/dirsync.db"\n[[sources]]\nname = "entra"\ntype = "graph"\n'
            f'tenant_id = "bench.onmicrosoft.com"\nclient_id = "b"\nclient_secret_file = "graph.secret"\n'
            f'authority_url = "{base}"\ngraph_url = "{base}"\n')
        log()
        full_s, full_rss = timed([binary, "--config", config, "sync"])
        full_reqs = log()
        urllib.request.urlopen(urllib.request.Request(base + "/_change", data=b"", method="POST"))
        delta_s, delta_rss = timed([binary, "--config", config, "sync"])
        delta_reqs = log()
        curl_full = replay(full_reqs, work)
        curl_delta = replay(delta_reqs, work)
        def kinds(rs):
            out = {}
            for _, path, _ in rs:
                p = path.split("?")[0]
                k = "token" if p.endswith("/token") else p.replace("/v1.0/", "")
                out[k] = out.get(k, 0) + 1
            return out
        print(f"tenant: {users} users, {groups} groups")
        print(f"full sync:  {full_s:.2f} s, {len(full_reqs)} requests {kinds(full_reqs)}, peak RSS {full_rss:.0f} MiB")
        print(f"  curl replay of the same requests: {curl_full:.2f} s -> ratio {full_s / curl_full:.2f}x")
        print(f"delta sync (1% of users changed, 1% of groups' members): {delta_s:.2f} s, {len(delta_reqs)} requests {kinds(delta_reqs)}, peak RSS {delta_rss:.0f} MiB")
        print(f"  curl replay of the same requests: {curl_delta:.2f} s -> ratio {delta_s / curl_delta:.2f}x")
        print(f"  delta / full: {delta_s / full_s:.1%}")
finally:
    fake.kill()
