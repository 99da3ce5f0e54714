#!/usr/bin/env python3
"""Issue 11's benchmark: a program source and a CSV source at 100,000 users.

Program: the compiled sample (tests/fixtures/programs/userdir.c, built here
with `cc -O2`) prints 100,000 users and 1,000 groups of 100 members. The
reference, in the same script, is the program's own calls as a shell would
make them, to /dev/null: `all-users`, `all-groups`, then
`group-member-names G` for each group, one after another. dirsync's first
sync (release build, empty store each time) makes the same calls (four
`group-member-names` at once) and also maps, plans and writes the store.
Target: first sync <= 1.3x the reference.

CSV: a generated 100,000-row file (login, name, email, card, groups); the
first sync into an empty store, reported as rows/s.

    python3 bench/program_run.py --users 100000 --groups 1000 --reps 3
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile

from common import ROOT, build_release, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-bench-program-")
    try:
        prog = os.path.join(work, "userdir")
        subprocess.run(["cc", "-O2", "-o", prog, os.path.join(ROOT, "tests/fixtures/programs/userdir.c")], check=True)
        os.environ["USERDIR_USERS"], os.environ["USERDIR_GROUPS"] = str(a.users), str(a.groups)
        reference = (
            f'p={prog}; "$p" - all-users >/dev/null; '
            f'for g in $("$p" - all-groups); do "$p" - group-member-names "$g" >/dev/null; done'
        )
        cfg = os.path.join(work, "program.toml")
        with open(cfg, "w") as f:
            f.write(f'[store]\npath = "program.db"\n[[sources]]\nname = "campus"\ntype = "program"\nprogram = "{prog}"\n')
        csv_path = os.path.join(work, "people.csv")
        with open(csv_path, "w") as f:
            f.write("login,name,email,card,groups\n")
            for n in range(a.users):
                f.write(f'u{n:06d},"Number, User {n}",u{n:06d}@example.com,{10000000 + n},g{n % a.groups:04d};all\n')
        csv_cfg = os.path.join(work, "csv.toml")
        with open(csv_cfg, "w") as f:
            f.write('[store]\npath = "csv.db"\n[[sources]]\nname = "hr"\ntype = "csv"\npath = "people.csv"\n'
                    '[sources.fields]\nusername = "login"\nfull_name = "name"\nemail = "email"\ncard_number = "card"\n')

        rows = {"ref": [], "prog": [], "prog_rss": [], "csv": [], "csv_rss": []}
        for _ in range(a.reps):
            rows["ref"].append(timed(["sh", "-c", reference])[0])
            for db in ("program.db", "csv.db"):
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(os.path.join(work, db + suffix)):
                        os.remove(os.path.join(work, db + suffix))
            s, rss = timed([binary, "--config", cfg, "sync"])
            rows["prog"].append(s)
            rows["prog_rss"].append(rss)
            s, rss = timed([binary, "--config", csv_cfg, "sync"])
            rows["csv"].append(s)
            rows["csv_rss"].append(rss)
        med = {k: statistics.median(v) for k, v in rows.items()}
        ratio = med["prog"] / med["ref"]
        print(f"program's own calls to /dev/null (reference): {med['ref']:.2f} s")
        print(f"first sync of the program source: {med['prog']:.2f} s ({ratio:.2f}x the reference; target <= 1.3x: "
              f"{'met' if ratio <= 1.3 else 'NOT met'}), peak RSS {med['prog_rss']:.0f} MiB")
        print(f"first sync of the CSV source: {med['csv']:.2f} s, {a.users / med['csv']:,.0f} rows/s, "
              f"peak RSS {med['csv_rss']:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
