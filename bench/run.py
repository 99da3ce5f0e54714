#!/usr/bin/env python3
"""dirsync benchmark: sync N users / G groups from a real slapd into SQLite,
against the floor of reading the same directory with OpenLDAP's ldapsearch.

Usage: python3 bench/run.py [--users 100000] [--groups 1000] [--reps 3] [--compare OTHER_BINARY]

A second reference, examples/rawread.rs, does only the paged read with ldap3
(the LDAP client dirsync uses), decoding each entry and dropping it: the floor
for any ldap3-based reader on this machine.

--compare times the first sync of another dirsync build too (e.g. the commit
before a change, built in a worktree), alternating with this one's in the
same script, so the two are measured against the same slapd and floor.

Everything runs in this one script, on this machine: it generates the data,
loads it into a throwaway slapd (scripts/slapd-test-server.sh), builds the
release binary, then times each step as whole processes (wall clock, median
of --reps) and reads each dirsync process's peak RSS from wait4().
Results go to stdout as a Markdown table (paste into BENCHMARKS.md)."""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

from common import ADMIN, ROOT, SUFFIX, build_release, slapd_up, stop, timed

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--per-user", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--compare", help="another dirsync binary whose first sync is timed too")
    a = ap.parse_args()

    binary = build_release()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "rawread"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="dirsync-bench-")
    base = os.path.join(work, "slapd")
    data = os.path.join(work, "data.ldif")
    try:
        with open(data, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_ldif.py"), str(a.users), str(a.groups), str(a.per_user)], stdout=f, check=True)
        t0 = time.perf_counter()
        url = slapd_up(base, data)
        load = time.perf_counter() - t0
        with open(os.path.join(work, "secret.txt"), "w") as f:
            f.write("secret\n")
        cfg = os.path.join(work, "dirsync.toml")
        with open(cfg, "w") as f:
            f.write(f'''[store]
path = "dirsync.db"
[[sources]]
name = "bench"
type = "ldap"
url = "{url}"
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
''')
        db = os.path.join(work, "dirsync.db")
        ldapsearch = ["ldapsearch", "-x", "-LLL", "-H", url, "-D", ADMIN, "-w", "secret", "-b", SUFFIX, "-E", "pr=1000/noprompt"]
        users_f, groups_f = "(objectClass=inetOrgPerson)", "(objectClass=groupOfNames)"
        attrs = ["entryUUID", "uid", "cn", "mail", "departmentNumber", "l", "roomNumber", "employeeNumber", "telephoneNumber"]

        def raw_all():
            return timed(ldapsearch + [f"(|{users_f}{groups_f})"])[0]

        rawread = os.path.join(ROOT, "target", "release", "examples", "rawread")
        def raw_ldap3():
            return timed([rawread, url, ADMIN, "secret", SUFFIX])[0]

        def raw_same():
            return timed(ldapsearch + [users_f] + attrs)[0] + timed(ldapsearch + [groups_f, "entryUUID", "cn", "member"])[0]

        def sync(*extra, using=binary):
            return timed([using, "--config", cfg, "sync", *extra])

        def reset():
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)

        raw_all(); raw_same()  # warm slapd's caches
        rows = {}
        rows["raw_all"] = [raw_all() for _ in range(a.reps)]
        rows["raw_same"] = [raw_same() for _ in range(a.reps)]
        rows["raw_ldap3"] = [raw_ldap3() for _ in range(a.reps)]
        first, first_rss, other, other_rss = [], [], [], []
        for _ in range(a.reps):
            if a.compare:
                reset()
                dt, rss = sync(using=a.compare); other.append(dt); other_rss.append(rss)
            reset()
            dt, rss = sync(); first.append(dt); first_rss.append(rss)
        # Full reads of an unchanged directory (--full: a full comparison).
        nochange, nochange_rss = [], []
        for _ in range(a.reps):
            dt, rss = sync("--full"); nochange.append(dt); nochange_rss.append(rss)
        # Incremental reads (RFC 4533) of an unchanged directory.
        inc_none, inc_none_rss = [], []
        for _ in range(a.reps):
            dt, rss = sync(); inc_none.append(dt); inc_none_rss.append(rss)
        step = 100  # 1% of users: every 100th
        def change(tag):
            mods = "".join(f"dn: uid=user{i:06d},ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: {tag}.user{i:06d}@example.com\n\n"
                           for i in range(0, a.users, step))
            subprocess.run(["ldapmodify", "-x", "-H", url, "-D", ADMIN, "-w", "secret"], input=mods.encode(), check=True, stdout=subprocess.DEVNULL)
        changed, changed_rss, inc, inc_rss = [], [], [], []
        for rep in range(a.reps):
            change(f"full{rep}")
            dt, rss = sync("--full"); changed.append(dt); changed_rss.append(rss)
            change(f"inc{rep}")
            dt, rss = sync(); inc.append(dt); inc_rss.append(rss)
        med = statistics.median
        ra, rs = med(rows["raw_all"]), med(rows["raw_same"])
        print(f"users={a.users} groups={a.groups} per_user={a.per_user} reps={a.reps} (medians; slapadd load {load:.1f} s)\n")
        print("| step | time (s) | × raw ldapsearch, all attributes | × raw ldapsearch, dirsync's attributes | × first sync | peak RSS (MiB) |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| raw paged ldapsearch of all entries, all attributes (floor) | {ra:.2f} | 1.00 | {ra/rs:.2f} | – | – |")
        print(f"| raw paged ldapsearch, the attributes dirsync requests | {rs:.2f} | {rs/ra:.2f} | 1.00 | – | – |")
        r3 = med(rows["raw_ldap3"])
        print(f"| ldap3's paged read alone, dirsync's attributes (examples/rawread.rs: decode, drop) | {r3:.2f} | {r3/ra:.2f} | {r3/rs:.2f} | – | – |")
        f0 = med(first)
        if other:
            o = med(other)
            print(f"| first sync, the `--compare` build | {o:.2f} | {o/ra:.2f} | {o/rs:.2f} | {o/f0:.3f} | {max(other_rss):.0f} |")
        for name, t, m in [("first sync (empty store, full read)", first, first_rss),
                           ("full read, no changes (`sync --full`)", nochange, nochange_rss),
                           ("full read after changing 1% of users (`sync --full`)", changed, changed_rss),
                           ("incremental, no changes (`sync`)", inc_none, inc_none_rss),
                           ("incremental after changing 1% of users (`sync`)", inc, inc_rss)]:
            print(f"| {name} | {med(t):.2f} | {med(t)/ra:.2f} | {med(t)/rs:.2f} | {med(t)/f0:.3f} | {max(m):.0f} |")
        # What an integrity check of the store costs (`dirsync check` runs it).
        import sqlite3
        qc = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            con = sqlite3.connect(db)
            con.execute("PRAGMA quick_check").fetchall()
            con.close()
            qc.append(time.perf_counter() - t0)
        print(f"| `PRAGMA quick_check` of the store (`dirsync check`) | {med(qc):.2f} | {med(qc)/ra:.2f} | {med(qc)/rs:.2f} | {med(qc)/f0:.3f} | – |")
    finally:
        stop(os.path.join(base, "run", "slapd.pid"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
