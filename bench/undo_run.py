#!/usr/bin/env python3
"""Undo benchmark: undoing a 100,000-user first sync, and a 10,000-user
mass rename, each against the run it undoes (the reference in the same
script, on the same store and directory).

Usage: python3 bench/undo_run.py [--users 100000] [--groups 1000] [--renames 10000]

Target (issue 29): an undo no slower than the run it undoes.

Everything runs here: the release binary, a throwaway slapd
(scripts/slapd-test-server.sh) loaded with bench/gen_ldif.py's directory, a
SQLite store; each step is one process, timed whole (wall clock) with its
peak RSS. Results go to stdout as Markdown."""
import argparse, json, os, shutil, subprocess, sys, tempfile

from common import ADMIN, ROOT, SUFFIX, build_release, slapd_up, stop, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--renames", type=int, default=10_000)
    a = ap.parse_args()
    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-undobench-")
    base = os.path.join(work, "slapd")
    try:
        data = os.path.join(work, "data.ldif")
        with open(data, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_ldif.py"), str(a.users), str(a.groups), "3"],
                           stdout=f, check=True)
        url = slapd_up(base, data)
        with open(os.path.join(work, "secret.txt"), "w") as f:
            f.write("secret\n")
        cfg = os.path.join(work, "dirsync.toml")
        with open(cfg, "w") as f:
            f.write(f'[store]\npath = "dirsync.db"\n[[sources]]\nname = "bench"\ntype = "ldap"\nurl = "{url}"\n'
                    f'bind_dn = "{ADMIN}"\nbind_password_file = "secret.txt"\nbase_dn = "{SUFFIX}"\npage_size = 1000\n'
                    '[sources.fields]\nusername = "uid"\nfull_name = "cn"\nemail = "mail"\ndepartment = "departmentNumber"\n'
                    '[safety]\nmax_delete_percent = 100\nmax_delete_count = 10000000\n')
        run = lambda *x: timed([binary, "--config", cfg, *x])
        last_run = lambda: json.loads(subprocess.run([binary, "--config", cfg, "runs", "--json", "--limit", "1"],
                                                      capture_output=True, check=True).stdout)[0]["id"]
        print(f"{a.users:,} users in {a.groups:,} groups (3 each), slapd on this machine, SQLite; {os.cpu_count()} cores\n")
        print("| Run | The run | Its undo | Undo / run | Undo's peak RSS |")
        print("|---|---|---|---|---|")
        t_sync, _ = run("sync")
        first = last_run()
        t_undo, rss = run("runs", "undo", str(first))
        print(f"| First sync of {a.users:,} users (undone: all disabled, out of their groups, groups deleted) "
              f"| {t_sync:.1f} s | {t_undo:.1f} s | {t_undo / t_sync:.2f}× | {rss:.0f} MiB |", flush=True)
        # A fresh store, synced, then a mass rename.
        for suffix in ("", "-wal", "-shm"):
            p = os.path.join(work, "dirsync.db" + suffix)
            if os.path.exists(p):
                os.remove(p)
        run("sync")
        ldif = "".join(f"dn: uid=user{i:06d},ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=renamed{i:06d}\n"
                       f"deleteoldrdn: 1\n\n" for i in range(a.renames))
        subprocess.run(["ldapmodify", "-x", "-H", url, "-D", ADMIN, "-w", "secret"], input=ldif.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        t_sync, _ = run("sync")
        renamed = last_run()
        t_undo, rss = run("runs", "undo", str(renamed))
        print(f"| Rename of {a.renames:,} users (incremental; undone: the old names back) "
              f"| {t_sync:.1f} s | {t_undo:.1f} s | {t_undo / t_sync:.2f}× | {rss:.0f} MiB |")
    finally:
        stop(os.path.join(base, "run", "slapd.pid"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
