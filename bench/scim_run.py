#!/usr/bin/env python3
"""SCIM benchmark: sustained POST /scim/v2/Users and PATCH /scim/v2/Users/{id}
through `dirsync serve` on loopback (every change goes through the engine
and is audited), then GET /scim/v2/Users?filter=userName eq "…" for random
users once the source holds N users. wrk drives every phase (installed with
apt-get when missing). References in the same script, on the same server:
GET /healthz (the HTTP floor) and GET /api/users/{name} (the API's indexed
lookup of one user).

Usage: python3 bench/scim_run.py [--users 100000] [--seconds 10] [--connections 16] [--store sqlite|postgres]

Targets (issue 27): POST and PATCH ≥ 2,000 writes/s; the filtered GET at
100,000 users ≥ 10,000/s.

Everything runs here: the release binary, `dirsync serve` on a free port
with one SCIM source and an empty store (SQLite, or with --store postgres a
throwaway PostgreSQL 15 cluster from scripts/pg-test-server.sh, DURABLE=1).
wrk and dirsync share this machine's cores (2 here). Results go to stdout
as Markdown."""
import argparse, json, os, shutil, sqlite3, subprocess, sys, tempfile, time, urllib.request

from common import ROOT, build_release, free_port, serve_up
from serve_run import wrk

SCIM_TOKEN = "bench-scim-token-0123456789abcdef0123"
API_TOKEN = "bench-api-token-0123456789abcdef"

# The first answer of each status other than 200/201 a thread sees, on stderr.
STATUS_LUA = r'''
local seen = {}
response = function(status, headers, body)
  if status ~= 200 and status ~= 201 and not seen[status] then
    seen[status] = true
    io.stderr:write("status " .. status .. ": " .. body:sub(1, 300) .. "\n")
  end
end
'''

# Each wrk thread numbers its users; names are unique across threads and runs.
POST_LUA = r'''
local counter, tid = 0, 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(os.time() + tid)
end
request = function()
  counter = counter + 1
  local name = string.format("%s-t%d-%07d@bench.example", RUN, tid, counter)
  local body = string.format('{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s","name":{"givenName":"Bench","familyName":"User %d"},"emails":[{"primary":true,"type":"work","value":"%s"}],"active":true}', name, counter, name)
  return wrk.format("POST", "/scim/v2/Users", {["Authorization"] = "Bearer TOKEN", ["Content-Type"] = "application/scim+json"}, body)
end
''' + STATUS_LUA

# Random users of a list (one per line) read at start.
LIST_LUA = r'''
local items = {}
function init(args)
  for line in io.lines("FILE") do table.insert(items, line) end
  math.randomseed(os.time() + math.random(1, 100000))
end
request = function()
  local v = items[math.random(1, #items)]
  REQUEST
end
''' + STATUS_LUA

PATCH_REQ = r'''local body = string.format('{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Bench %d"}]}', math.random(1, 1000000000))
  return wrk.format("PATCH", "/scim/v2/Users/" .. v, {["Authorization"] = "Bearer TOKEN", ["Content-Type"] = "application/scim+json"}, body)'''
FILTER_REQ = r'''return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22" .. v .. "%22", {["Authorization"] = "Bearer TOKEN"})'''
API_REQ = r'''return wrk.format("GET", "/api/users/" .. v, {["Authorization"] = "Bearer APITOKEN"})'''


def lua(work, name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text.replace("APITOKEN", API_TOKEN).replace("TOKEN", SCIM_TOKEN))
    return path


def scim_users(base_url):
    req = urllib.request.Request(base_url + "/scim/v2/Users?count=0", headers={"Authorization": f"Bearer {SCIM_TOKEN}"})
    return json.load(urllib.request.urlopen(req))["totalResults"]


def rows_of(store_query):
    """(scim id, userName) of every live SCIM user, from the store."""
    return store_query("SELECT id, body FROM scim_resources WHERE kind = 'User' AND deleted IS NULL")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    binary = build_release()
    work = tempfile.mkdtemp(prefix="dirsync-scim-bench-")
    os.chmod(work, 0o755)
    server, pg_base = None, None
    try:
        if a.store == "postgres":
            pg_base, pg_port = os.path.join(work, "pg"), free_port()
            env = dict(os.environ, BASE=pg_base, PORT=str(pg_port), DURABLE=os.environ.get("DURABLE", "1"))
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg-test-server.sh"), "start"], check=True, env=env)
            store = f'[store]\nurl = "postgres://postgres@127.0.0.1:{pg_port}/postgres"\npassword_file = "pg.secret"\n'
            with open(os.path.join(work, "pg.secret"), "w") as f:
                f.write("secret\n")

            def query(sql):
                out = subprocess.run(["psql", "-X", "-A", "-t", "-F", "\t", f"postgres://postgres:secret@127.0.0.1:{pg_port}/postgres", "-c", sql],
                                     check=True, capture_output=True, text=True).stdout
                return [tuple(l.split("\t", 1)) for l in out.splitlines() if l]
        else:
            store = '[store]\npath = "dirsync.db"\n'

            def query(sql):
                with sqlite3.connect(os.path.join(work, "dirsync.db")) as c:
                    return c.execute(sql).fetchall()
        for name, token in (("scim.token", SCIM_TOKEN), ("api.token", API_TOKEN)):
            with open(os.path.join(work, name), "w") as f:
                f.write(token + "\n")
        port = free_port()
        cfg = os.path.join(work, "dirsync.toml")
        with open(cfg, "w") as f:
            f.write(store + f'[server]\nlisten = "127.0.0.1:{port}"\n'
                    '[[server.clients]]\nname = "bench"\ntoken_file = "api.token"\nscopes = ["read"]\n'
                    '[schedule]\nfull = ""\nincremental = ""\n'
                    '[[sources]]\nname = "idp"\ntype = "scim"\ntoken_file = "scim.token"\n')
        server, base_url = serve_up(binary, cfg, port)
        rows = [("`GET /healthz` (reference: the HTTP floor)", wrk(base_url + "/healthz", a.seconds, a.connections))]
        post = wrk(base_url, a.seconds, a.connections, lua(work, "post.lua", POST_LUA.replace("RUN", '"r0"')))
        rows.append(("`POST /scim/v2/Users` (each a create through the engine, audited)", post))
        # Fill the source up to --users, at the rate just measured.
        run = 1
        while (n := scim_users(base_url)) < a.users:
            secs = max(2, int((a.users - n) / max(post[0], 100) * 1.1) + 1)
            wrk(base_url, secs, a.connections, lua(work, "post.lua", POST_LUA.replace("RUN", f'"r{run}"')))
            run += 1
        n = scim_users(base_url)
        users = rows_of(query)
        ids = os.path.join(work, "ids.txt")
        names = os.path.join(work, "names.txt")
        with open(ids, "w") as fi, open(names, "w") as fn:
            for sid, body in users:
                fi.write(sid + "\n")
                fn.write(json.loads(body)["userName"].replace("@", "%40") + "\n")
        lookup = wrk(base_url, a.seconds, a.connections, lua(work, "api.lua", LIST_LUA.replace("FILE", names).replace("REQUEST", API_REQ)))
        rows.append((f"`GET /api/users/{{name}}` at {n:,} users (reference: the API's indexed lookup)", lookup))
        flt = wrk(base_url, a.seconds, a.connections, lua(work, "filter.lua", LIST_LUA.replace("FILE", names).replace("REQUEST", FILTER_REQ)))
        rows.append((f"`GET /scim/v2/Users?filter=userName eq \"…\"` at {n:,} users", flt))
        patch = wrk(base_url, a.seconds, a.connections, lua(work, "patch.lua", LIST_LUA.replace("FILE", ids).replace("REQUEST", PATCH_REQ)))
        rows.append((f"`PATCH /scim/v2/Users/{{id}}` (displayName) at {n:,} users", patch))
        audited = query("SELECT count(*) FROM audit")[0][0]
        print(f"\nSCIM on {a.store}, {a.connections} connections, {a.seconds} s a phase; {n:,} SCIM users; {audited} audit rows\n")
        print("| what | requests/s | p99 ms | non-2xx | vs /healthz |")
        print("|---|---:|---:|---:|---:|")
        for what, (rps, p99, bad) in rows:
            print(f"| {what} | {rps:,.0f} | {p99:.1f} | {bad} | {rps / rows[0][1][0]:.2f} |")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=60)
        if pg_base:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg-test-server.sh"), "stop"], env=dict(os.environ, BASE=pg_base))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
