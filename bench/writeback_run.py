#!/usr/bin/env python3
"""dirsync write-back rate: push N changed app-owned values (pager) to slapd,
against the raw rate of ldapmodify applying the same N changes.

Usage: python3 bench/writeback_run.py [--users 10000] [--reps 3] [--in-flight 1,8,32]

Each push is timed with every `[sources.writeback] in_flight` value given
(1: one item after another, as before issue 13; 8: the default).

The N queue items are what N `dirsync users set USER print_code VALUE` calls
leave behind; they are written into the store with SQL here (one statement),
so the benchmark measures the push, not N process starts. Each push reads the
entry's current value, compares, writes (modify/replace) and records the
outcome in SQLite, item by item."""
import argparse, datetime, os, time, shutil, sqlite3, statistics, subprocess, sys, tempfile

from common import ADMIN, ROOT, SUFFIX, build_release, slapd_up, stop, timed as timed_rss


def timed(cmd, stdin=None):
    return timed_rss(cmd, stdin)[0]


def ldif_part(users, tag, j=0, k=1):
    """The raw references' changes: every k-th user from j gets pager TAG<i>."""
    return "".join(f"dn: uid=user{i:06d},ou=people,{SUFFIX}\nchangetype: modify\nreplace: pager\npager: {tag}{i}\n\n"
                   for i in range(j, users, k)).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--in-flight", default="1,8,32")
    a = ap.parse_args()
    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-wbbench-")
    base = os.path.join(work, "slapd")
    try:
        data = os.path.join(work, "data.ldif")
        with open(data, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_ldif.py"), str(a.users), "10", "1"], stdout=f, check=True)
        url = slapd_up(base, data)
        open(os.path.join(work, "pw"), "w").write("secret\n")
        cfg = os.path.join(work, "dirsync.toml")
        open(cfg, "w").write(f'''[store]
path = "dirsync.db"
[[sources]]
name = "bench"
type = "ldap"
url = "{url}"
bind_dn = "{ADMIN}"
bind_password_file = "pw"
base_dn = "{SUFFIX}"
page_size = 1000
[sources.fields]
username = "uid"
full_name = "cn"
print_code = {{ attribute = "pager", owner = "app" }}
[sources.writeback]
enabled = true
# The raw ldapmodify between reps changes the directory behind the store's
# back: "app" still reads and compares every value, then writes it.
on_conflict = "app"
in_flight = IN_FLIGHT
''')
        template = open(cfg).read()
        flights = [int(x) for x in a.in_flight.split(",")]
        def configure(k):
            open(cfg, "w").write(template.replace("IN_FLIGHT", str(k)))
        configure(flights[0])
        timed([binary, "--config", cfg, "sync"])
        db = os.path.join(work, "dirsync.db")
        push, again, raw, raw8 = {k: [] for k in flights}, {k: [] for k in flights}, [], []
        serial = 0
        for rep in range(a.reps):
            for k in flights:
                configure(k)
                serial += 1
                now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                con = sqlite3.connect(db)
                with con:
                    con.execute("UPDATE users SET fields = json_set(fields, '$.print_code', printf('%d%06d', ?, id))", (serial,))
                    con.execute("""INSERT INTO writeback (user_id, field, attribute, value, old_value, base_value, status, attempts, created_at, updated_at)
                                   SELECT id, 'print_code', 'pager', json_extract(fields, '$.print_code'), NULL, json_extract(dir_values, '$.print_code'),
                                          'pending', 0, ?1, ?1 FROM users WHERE true
                                   ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value, base_value = excluded.base_value,
                                          old_value = NULL, status = 'pending', attempts = 0, updated_at = excluded.updated_at""", (now,))
                n = con.execute("SELECT count(*) FROM writeback WHERE status = 'pending'").fetchone()[0]
                con.close()
                push[k].append(timed([binary, "--config", cfg, "writeback", "push"]))
                con = sqlite3.connect(db)
                done = con.execute("SELECT count(*) FROM writeback WHERE status = 'done'").fetchone()[0]
                con.close()
                assert done == n, f"in_flight = {k}: {done} of {n} items done"
                # Idempotence: the same values again are read and found there.
                con = sqlite3.connect(db)
                with con:
                    con.execute("UPDATE writeback SET status = 'pending'")
                con.close()
                again[k].append(timed([binary, "--config", cfg, "writeback", "push"]))
            # The raw rate: ldapmodify applying the same number of changes.
            ldif = ldif_part(a.users, f"raw{rep}")
            raw.append(timed(["ldapmodify", "-x", "-H", url, "-D", ADMIN, "-w", "secret"], stdin=ldif))
            # The directory's own write rate: the same changes from 8
            # ldapmodify processes at once (a floor no client can beat).
            parts = [ldif_part(a.users, f"par{rep}", j, 8) for j in range(8)]
            t0 = time.perf_counter()
            procs = [subprocess.Popen(["ldapmodify", "-x", "-H", url, "-D", ADMIN, "-w", "secret"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL) for _ in parts]
            for p, part in zip(procs, parts):
                p.stdin.write(part)
                p.stdin.close()
            assert all(p.wait() == 0 for p in procs)
            raw8.append(time.perf_counter() - t0)
        med = statistics.median
        print(f"write-back of {n} values, reps={a.reps} (medians)\n")
        print("| step | time (s) | values/s | × raw ldapmodify time |")
        print("|---|---:|---:|---:|")
        r = med(raw)
        print(f"| raw `ldapmodify` of the same {n} changes (one connection) | {r:.2f} | {n/r:,.0f} | 1.00 |")
        r8 = med(raw8)
        print(f"| raw: 8 `ldapmodify` processes at once, {n} changes in all | {r8:.2f} | {n/r8:,.0f} | {r8/r:.2f} |")
        for k in flights:
            p = med(push[k])
            print(f"| `dirsync writeback push`, in_flight = {k} ({n} changed values: read, compare, write, record) | {p:.2f} | {n/p:,.0f} | {p/r:.2f} |")
        for k in flights:
            g = med(again[k])
            print(f"| `dirsync writeback push` again, in_flight = {k} (all already there: read, compare, record) | {g:.2f} | {n/g:,.0f} | {g/r:.2f} |")
    finally:
        stop(os.path.join(base, "run", "slapd.pid"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
