#!/usr/bin/env python3
"""Live sync benchmark: the time from `ldapmodify` returning to the webhook
receiving the change, through `dirsync serve` holding a live channel on the
directory (RFC 4533 refreshAndPersist on slapd; AD change notifications on
Samba with --samba), then the throughput of a burst.

Usage: python3 bench/live_run.py [--users 1000] [--changes 1000] [--interval 0.2]
                                 [--burst 10000] [--debounce-ms 500] [--samba 100]

Phase 1: `--changes` single adds, one every `--interval` seconds (each
`ldapmodify` is its own process; its time is the reference floor), each
timed until the webhook delivering its create arrives at a receiver in this
process. p50/p99/max of those latencies. Target (issue 28): p99 ≤ 2 s on
slapd at the default debounce (500 ms).

Phase 2: one `ldapmodify` adding `--burst` users; the time until the
webhook has delivered all of them, against the time slapd took to apply
the same adds (the reference in the same script).

With --samba N: N single adds on the Samba AD DC of bench/ad_run.py's
cache (provisioned on first use; port 389 must be free).

Everything runs here: the release binary, slapd from
scripts/slapd-test-server.sh, a SQLite store; results go to stdout as
Markdown."""
import argparse, http.server, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time, urllib.request

from common import ADMIN, ROOT, SUFFIX, build_release, free_port, serve_up, service_config, slapd_up, stop

TOKEN = "bench-api-token-0123456789abcdef"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records when each username's create arrives (first arrival wins)."""
    arrived = {}
    lock = threading.Lock()

    def do_POST(self):
        now = time.perf_counter()
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with Receiver.lock:
            for c in body["changes"]:
                if c["action"] == "create":
                    Receiver.arrived.setdefault(c["name"], now)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def person(uid):
    return f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: User {uid}\nsn: {uid}\n\n"


def ldapmodify(url, bind, pw, ldif):
    subprocess.run(["ldapmodify", "-x", "-a", "-H", url, "-D", bind, "-w", pw], input=ldif.encode(), check=True,
                   stdout=subprocess.DEVNULL)


def api(base, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + TOKEN})
    return json.load(urllib.request.urlopen(req, timeout=10))


def wait(what, ok, secs=600):
    t0 = time.perf_counter()
    while not ok():
        if time.perf_counter() - t0 > secs:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


def singles(url, bind, pw, prefix, n, interval):
    """n single adds, one every `interval` s; (latencies, ldapmodify times)."""
    done, floors = {}, []
    for i in range(n):
        uid = f"{prefix}{i:05}"
        t0 = time.perf_counter()
        ldapmodify(url, bind, pw, person(uid) if bind == ADMIN else ad_person(uid))
        done[uid] = time.perf_counter()
        floors.append(done[uid] - t0)
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    wait("every single change", lambda: all(u in Receiver.arrived for u in done), 120)
    return [Receiver.arrived[u] - done[u] for u in done], floors


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def row(name, lat, floors):
    return (f"| {name} | {len(lat)} | {pct(lat, 50) * 1000:.0f} ms | {pct(lat, 99) * 1000:.0f} ms | "
            f"{max(lat) * 1000:.0f} ms | {statistics.median(floors) * 1000:.0f} ms |")


def ad_person(uid):
    return (f"dn: CN={uid},OU=bench,DC=example,DC=com\nobjectClass: user\nsAMAccountName: {uid}\n"
            f"userAccountControl: 544\n\n")


def start_service(binary, work, url, source_extra, rx_port, debounce):
    with open(os.path.join(work, "print.whsec"), "w") as f:
        f.write(SECRET + "\n")
    hook = (f'[[server.webhooks]]\nname = "bench"\nurl = "http://127.0.0.1:{rx_port}/hook"\n'
            'secret_file = "print.whsec"\nstart = "now"\n')
    live = f"[sources.live]\nenabled = true\ndebounce_ms = {debounce}\n"
    cfg, port = service_config(work, url, TOKEN, '["read"]', server_extra=hook, source_extra=source_extra + live)
    server, base = serve_up(binary, cfg, port)
    wait("the live channel", lambda: api(base, "/api/live")["sources"][0]["state"] == "live", 120)
    return server, base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--burst", type=int, default=10000)
    ap.add_argument("--debounce-ms", type=int, default=500)
    ap.add_argument("--samba", type=int, default=0)
    a = ap.parse_args()
    binary = build_release()
    rx_port = free_port()
    rx = http.server.ThreadingHTTPServer(("127.0.0.1", rx_port), Receiver)
    threading.Thread(target=rx.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="dirsync-livebench-")
    slapd_base = os.path.join(work, "slapd")
    server = None
    try:
        data = os.path.join(work, "data.ldif")
        with open(data, "w") as f:
            f.write(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n")
            f.write(f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n")
            f.write(f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n")
            for i in range(a.users):
                f.write(person(f"base{i:05}"))
        os.environ["BASE"] = slapd_base
        url = slapd_up(slapd_base, data)
        server, base = start_service(binary, work, url, "", rx_port, a.debounce_ms)
        wait("the first full read", lambda: api(base, "/api/webhooks")["webhooks"][0]["lag"] == 0 and
             len(api(base, f"/api/users?limit=1&q=base{a.users - 1:05}")["users"]) == 1, 300)
        print(f"slapd, {a.users} users, debounce {a.debounce_ms} ms, one change every {a.interval} s; "
              f"{os.cpu_count()} cores\n")
        print("| Directory | Changes | p50 | p99 | max | ldapmodify itself (p50) |")
        print("|---|---|---|---|---|---|")
        lat, floors = singles(url, ADMIN, "secret", "lat", a.changes, a.interval)
        print(row("slapd (refreshAndPersist)", lat, floors), flush=True)
        if a.burst:
            ldif = "".join(person(f"burst{i:05}") for i in range(a.burst))
            t0 = time.perf_counter()
            ldapmodify(url, ADMIN, "secret", ldif)
            applied = time.perf_counter() - t0
            wait("the burst", lambda: all(f"burst{i:05}" in Receiver.arrived for i in range(a.burst)), 1200)
            total = max(Receiver.arrived[f"burst{i:05}"] for i in range(a.burst)) - t0
            live_runs = sum(1 for r in api(base, "/api/runs?limit=1000")["runs"] if r["mode"] == "live")
            print(f"\nBurst: {a.burst} adds in one ldapmodify: slapd applied them in {applied:.1f} s; the webhook had all "
                  f"of them {total:.1f} s after the start ({a.burst / total:.0f} changes/s end to end, "
                  f"{total / applied:.2f}× slapd's own time); {live_runs} live runs in all so far.")
        server.terminate()
        server.wait(timeout=60)
        server = None
        if a.samba:
            samba_phase(binary, work, rx_port, a)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=60)
        stop(os.path.join(slapd_base, "run", "slapd.pid"))
        rx.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def samba_phase(binary, work, rx_port, a):
    """N single adds on Samba AD, through AD change notifications."""
    pw, admin = "Passw0rd!Test", "Administrator@example.com"
    cache = os.path.join(ROOT, "bench", "out", "samba-live")
    if not os.path.exists(os.path.join(cache, "ready")):
        shutil.rmtree(cache, ignore_errors=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "samba-test-server.sh")], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, D=cache, PW=pw))
        ldapmodify("ldap://127.0.0.1:389", admin, pw, "dn: OU=bench,DC=example,DC=com\nobjectClass: organizationalUnit\nou: bench\n\n")
        open(os.path.join(cache, "ready"), "w").write("ok\n")
    else:
        p = subprocess.Popen(["samba", "-i", "-M", "single", "-s", os.path.join(cache, "etc", "smb.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open(os.path.join(cache, "samba.pid"), "w").write(str(p.pid))
        time.sleep(3)
    swork = os.path.join(work, "samba")
    os.makedirs(swork)
    try:
        with open(os.path.join(swork, "secret.txt"), "w") as f:
            f.write(pw + "\n")
        cfg = os.path.join(swork, "dirsync.toml")
        port = free_port()
        with open(os.path.join(swork, "bench.token"), "w") as f:
            f.write(TOKEN + "\n")
        with open(os.path.join(swork, "print.whsec"), "w") as f:
            f.write(SECRET + "\n")
        with open(cfg, "w") as f:
            f.write(f'[store]\npath = "dirsync.db"\n[server]\nlisten = "127.0.0.1:{port}"\n'
                    f'[[server.webhooks]]\nname = "bench"\nurl = "http://127.0.0.1:{rx_port}/hook"\nsecret_file = "print.whsec"\n'
                    '[[server.clients]]\nname = "bench"\ntoken_file = "bench.token"\nscopes = ["read"]\n'
                    '[schedule]\nfull = ""\nincremental = ""\n'
                    f'[[sources]]\nname = "ad"\ntype = "ad"\nurl = "ldap://127.0.0.1:389"\nbind_dn = "{admin}"\n'
                    f'bind_password_file = "secret.txt"\nbase_dn = "OU=bench,DC=example,DC=com"\n'
                    f'[sources.live]\nenabled = true\ndebounce_ms = {a.debounce_ms}\n[safety]\nmax_delete_percent = 100\n')
        server, base = serve_up(binary, cfg, port)
        try:
            wait("the live channel", lambda: api(base, "/api/live")["sources"][0]["state"] == "live", 120)
            time.sleep(2)
            run = int(time.time())
            lat, floors = singles("ldap://127.0.0.1:389", admin, pw, f"s{run % 100000}x", a.samba, max(a.interval, 0.5))
            print(row("Samba AD (change notifications)", lat, floors))
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        pid = os.path.join(cache, "samba.pid")
        if os.path.exists(pid):
            subprocess.run(["kill", open(pid).read().strip()])


if __name__ == "__main__":
    main()
