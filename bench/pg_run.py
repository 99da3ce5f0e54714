#!/usr/bin/env python3
"""dirsync on PostgreSQL against dirsync on SQLite, in one script: the first
sync of N users (and G groups) from a real slapd into an empty store, and a
no-change full sync (`sync --full`), each timed as a whole process (median
of --reps, each rep on a fresh store); then GET /api/users/{name} for random
users with wrk through one `dirsync serve` on SQLite, one on PostgreSQL, and
two instances sharing the PostgreSQL store (two wrk processes at once).

Usage: python3 bench/pg_run.py [--users 100000] [--groups 1000] [--reps 3] [--seconds 10]

Target (issue 26): PostgreSQL ≤ 1.5× SQLite's time for both syncs.

Everything runs here: data generation, a throwaway slapd, a throwaway
PostgreSQL 15 cluster (scripts/pg-test-server.sh with DURABLE=1: fsync and
synchronous commits on, as SQLite's WAL with synchronous=NORMAL keeps its
commits; DURABLE=0 in the environment turns them off, to see what they
cost), the release binary. dirsync, slapd, PostgreSQL and wrk share this
machine's cores (2 here). Results go to stdout as Markdown."""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, threading

from common import ADMIN, ROOT, SUFFIX, build_release, free_port, serve_up, slapd_up, stop, timed
from serve_run import LUA, wrk

TOKEN = "bench-token-0123456789abcdef"
PG = os.path.join(ROOT, "scripts", "pg-test-server.sh")


def pg(base, what, port=0):
    env = dict(os.environ, BASE=base, PORT=str(port), DURABLE=os.environ.get("DURABLE", "1"))
    subprocess.run(["bash", PG, what], check=True, env=env)


def psql(port, sql):
    subprocess.run(["psql", "-X", "-q", f"postgres://postgres:secret@127.0.0.1:{port}/postgres", "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)


def config(work, name, ldap_url, store, server=""):
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f'''{store}
[[sources]]
name = "bench"
type = "ldap"
url = "{ldap_url}"
bind_dn = "{ADMIN}"
bind_password_file = "secret.txt"
base_dn = "{SUFFIX}"
page_size = 1000
[sources.fields]
username = "uid"
full_name = "cn"
email = "mail"
department = "departmentNumber"
office = {{ template = "{{l}} {{roomNumber}}" }}
card_number = {{ attribute = "employeeNumber", on = ["create"] }}
extension = {{ attribute = "telephoneNumber", transform = "digits" }}
[safety]
max_delete_percent = 100
max_delete_count = 1000000
{server}''')
    return path


def server(port):
    return (f'[server]\nlisten = "127.0.0.1:{port}"\n'
            f'[[server.clients]]\nname = "bench"\ntoken_file = "token.txt"\nscopes = ["read"]\n'
            '[schedule]\nfull = ""\nincremental = ""\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-pg-bench-")
    os.chmod(work, 0o755)
    pg_base, pg_port = os.path.join(work, "pg"), free_port()
    servers = []
    try:
        data = os.path.join(work, "data.ldif")
        with open(data, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_ldif.py"), str(a.users), str(a.groups), "3"], stdout=f, check=True)
        ldap_url = slapd_up(os.path.join(work, "slapd"), data)
        pg(pg_base, "start", pg_port)
        for name, text in [("secret.txt", "secret\n"), ("pg.secret", "secret\n"), ("token.txt", TOKEN + "\n")]:
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
        lite = config(work, "sqlite", ldap_url, '[store]\npath = "dirsync.db"\n')
        post_store = f'[store]\nurl = "postgres://postgres@127.0.0.1:{pg_port}/bench"\npassword_file = "pg.secret"\n'
        post = config(work, "postgres", ldap_url, post_store)

        def fresh(kind):
            if kind == "sqlite":
                for suffix in ["", "-wal", "-shm", ".lock"]:
                    p = os.path.join(work, "dirsync.db" + suffix)
                    if os.path.exists(p):
                        os.remove(p)
            else:
                psql(pg_port, "DROP DATABASE IF EXISTS bench")
                psql(pg_port, "CREATE DATABASE bench")

        times = {(k, step): [] for k in ["sqlite", "postgres"] for step in ["first", "nochange"]}
        rss = {(k, step): [] for k in ["sqlite", "postgres"] for step in ["first", "nochange"]}
        for _ in range(a.reps):
            for kind, cfg in [("sqlite", lite), ("postgres", post)]:
                fresh(kind)
                for step, args in [("first", ["sync"]), ("nochange", ["sync", "--full"])]:
                    s, m = timed([binary, "-c", cfg] + args)
                    times[(kind, step)].append(s)
                    rss[(kind, step)].append(m)
        print(f"### PostgreSQL store against SQLite ({a.users:,} users, {a.groups:,} groups; median of {a.reps})\n")
        print("| step | SQLite | PostgreSQL | ratio (target ≤ 1.5×) | peak RSS SQLite / PostgreSQL |")
        print("|---|---|---|---|---|")
        for step, label in [("first", "first sync"), ("nochange", "no-change full sync")]:
            sl, po = statistics.median(times[("sqlite", step)]), statistics.median(times[("postgres", step)])
            rl, rp = statistics.median(rss[("sqlite", step)]), statistics.median(rss[("postgres", step)])
            print(f"| {label} | {sl:.2f} s | {po:.2f} s | {po / sl:.2f}× | {rl:.0f} / {rp:.0f} MiB |")

        # The API: one instance on each store, then two on PostgreSQL.
        script = os.path.join(work, "users.lua")
        with open(script, "w") as f:
            f.write(LUA % (a.users, TOKEN))
        fresh("sqlite")
        subprocess.run([binary, "-c", lite, "sync"], check=True, stdout=subprocess.DEVNULL)
        results = []
        p1 = free_port()
        srv, base = serve_up(binary, config(work, "lite-serve", ldap_url, '[store]\npath = "dirsync.db"\n', server(p1)), p1)
        servers.append(srv)
        results.append(("SQLite, one instance", wrk(base + "/", a.seconds, a.connections, script)))
        srv.terminate(); srv.wait(); servers.remove(srv)
        bases = []
        for i in range(2):
            port = free_port()
            srv, base = serve_up(binary, config(work, f"pg-serve{i}", ldap_url, post_store, server(port)), port)
            servers.append(srv)
            bases.append(base)
        results.append(("PostgreSQL, one instance", wrk(bases[0] + "/", a.seconds, a.connections, script)))
        both = [None, None]

        def one(i):
            both[i] = wrk(bases[i] + "/", a.seconds, a.connections // 2, script)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.append(("PostgreSQL, two instances", (both[0][0] + both[1][0], max(both[0][1], both[1][1]), both[0][2] + both[1][2])))
        print(f"\n### GET /api/users/{{name}}, random users, {a.connections} connections, {a.seconds} s\n")
        print("| store | requests/s | p99 | non-2xx |")
        print("|---|---|---|---|")
        for label, (rps, p99, bad) in results:
            print(f"| {label} | {rps:,.0f} | {p99:.1f} ms | {bad} |")
    finally:
        for srv in servers:
            srv.terminate()
            srv.wait()
        stop(os.path.join(work, "slapd", "run", "slapd.pid"))
        pg(pg_base, "stop")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
