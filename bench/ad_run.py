#!/usr/bin/env python3
"""dirsync against Samba AD: 5,000 users (default) in 50 groups, each user in
3 groups. Samba adds entries slowly (~200/s), so the provisioned directory is
built once into bench/out/samba-N and reused by later runs.

Usage: python3 bench/ad_run.py [--users 5000] [--reps 3]
Prints a Markdown table: raw paged ldapsearch (the floor), full syncs, and
incremental (uSNChanged) syncs with nothing changed and after changing 1%."""
import argparse, os, random, shutil, statistics, subprocess, sys, tempfile, time

from common import ROOT, build_release, timed

PW = "Passw0rd!Test"
ADMIN = "Administrator@example.com"
DOMAIN = "DC=example,DC=com"
OU = "OU=bench," + DOMAIN


def ldapmodify(ldif):
    subprocess.run(["ldapmodify", "-x", "-a", "-H", "ldap://127.0.0.1:389", "-D", ADMIN, "-w", PW],
                   input=ldif.encode(), check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    binary = build_release()
    cache = os.path.join(ROOT, "bench", "out", f"samba-{a.users}")
    fresh = not os.path.exists(os.path.join(cache, "ready"))
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    if fresh:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "samba-test-server.sh")], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, D=cache, PW=PW))
    else:  # reuse the provisioned directory
        p = subprocess.Popen(["samba", "-i", "-M", "single", "-s", os.path.join(cache, "etc", "smb.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open(os.path.join(cache, "samba.pid"), "w").write(str(p.pid))
        for _ in range(300):
            if subprocess.run(["ldapsearch", "-x", "-H", "ldap://127.0.0.1:389", "-D", ADMIN, "-w", PW, "-b", DOMAIN, "-s", "base", "dn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
    work = tempfile.mkdtemp(prefix="dirsync-adbench-")
    try:
        if fresh:
            rnd = random.Random(42)
            ldif = f"dn: {OU}\nobjectClass: organizationalUnit\nou: bench\n\n"
            for i in range(a.users):
                ldif += (f"dn: CN=Bench User {i:05},{OU}\nobjectClass: user\nsAMAccountName: b{i:05}\n"
                         f"mail: b{i:05}@example.com\ndepartment: D{i % 20}\nuserAccountControl: 544\n\n")
            members = [[] for _ in range(a.groups)]
            for i in range(a.users):
                for g in rnd.sample(range(a.groups), 3):
                    members[g].append(i)
            for g in range(a.groups):
                ldif += f"dn: CN=bench-g{g:02},{OU}\nobjectClass: group\nsAMAccountName: bench-g{g:02}\n"
                ldif += "".join(f"member: CN=Bench User {i:05},{OU}\n" for i in members[g]) + "\n"
            ldapmodify(ldif)
            open(os.path.join(cache, "ready"), "w").write("ok\n")
        setup = time.perf_counter() - t0
        open(os.path.join(work, "pw"), "w").write(PW + "\n")
        cfg = os.path.join(work, "dirsync.toml")
        open(cfg, "w").write(f'''[store]
path = "dirsync.db"
[[sources]]
name = "ad"
type = "ad"
url = "ldap://127.0.0.1:389"
bind_dn = "{ADMIN}"
bind_password_file = "pw"
base_dn = "{OU}"
page_size = 1000
[safety]
max_delete_percent = 100
''')
        db = os.path.join(work, "dirsync.db")
        search = ["ldapsearch", "-x", "-LLL", "-H", "ldap://127.0.0.1:389", "-D", ADMIN, "-w", PW, "-b", OU, "-E", "pr=1000/noprompt",
                  "(|(objectClass=user)(objectClass=group))"]
        sync = lambda *x: timed([binary, "--config", cfg, "sync", *x])
        timed(search)
        raw = [timed(search)[0] for _ in range(a.reps)]
        first, first_rss = [], []
        for _ in range(a.reps):
            for f in (db, db + "-wal", db + "-shm"):
                if os.path.exists(f):
                    os.remove(f)
            t, m = sync(); first.append(t); first_rss.append(m)
        full = [sync("--full") for _ in range(a.reps)]
        inc0 = [sync() for _ in range(a.reps)]
        inc1, full1 = [], []
        step = 100
        for rep in range(a.reps):
            ldapmodify("".join(f"dn: CN=Bench User {i:05},{OU}\nchangetype: modify\nreplace: mail\nmail: r{rep}i.b{i:05}@example.com\n\n"
                               for i in range(rep, a.users, step)))
            inc1.append(sync())
            ldapmodify("".join(f"dn: CN=Bench User {i:05},{OU}\nchangetype: modify\nreplace: mail\nmail: r{rep}f.b{i:05}@example.com\n\n"
                               for i in range(rep, a.users, step)))
            full1.append(sync("--full"))
        med = statistics.median
        r, f0 = med(raw), med(first)
        print(f"Samba AD, users={a.users} groups={a.groups} reps={a.reps} (medians; {'built' if fresh else 'reused'} the directory in {setup:.0f} s)\n")
        print("| step | time (s) | × raw ldapsearch | × first sync | peak RSS (MiB) |")
        print("|---|---:|---:|---:|---:|")
        print(f"| raw paged ldapsearch of users and groups (floor) | {r:.3f} | 1.00 | – | – |")
        for name, xs in [("first sync (empty store)", list(zip(first, first_rss))), ("full read, no changes (`--full`)", full),
                         ("full read after changing 1% (`--full`)", full1), ("incremental (uSNChanged), no changes", inc0),
                         ("incremental after changing 1%", inc1)]:
            t = med([x[0] for x in xs]); m = max(x[1] for x in xs)
            print(f"| {name} | {t:.3f} | {t/r:.2f} | {t/f0:.3f} | {m:.0f} |")
    finally:
        pid = os.path.join(cache, "samba.pid")
        if os.path.exists(pid):
            subprocess.run(["kill", open(pid).read().strip()])
            time.sleep(2)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
