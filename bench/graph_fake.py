"""An in-memory Microsoft Graph tenant for bench/graph_run.py: USERS users and
GROUPS groups, pages pre-rendered, keep-alive HTTP/1.1 on loopback. Records
every request (method, URL, body) so the script can replay exactly the same
requests with curl. POST /_change applies 1% changes for a delta."""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

USERS, GROUPS, PAGE = int(sys.argv[2]), int(sys.argv[3]), 999
port = int(sys.argv[1])
BASE = f"http://127.0.0.1:{port}"
log, lock = [], threading.Lock()


def user(i, name=None):
    return {"id": f"u{i:06d}", "accountEnabled": True, "userPrincipalName": f"user{i:06d}@contoso.com",
            "displayName": name or f"User {i:06d}", "mail": f"user{i:06d}@contoso.com",
            "department": f"Dept {i % 50}", "officeLocation": f"Room {i % 300}"}


users = [user(i) for i in range(USERS)]
members = {g: [] for g in range(GROUPS)}
for i in range(USERS):
    for g in (i % GROUPS, (i * 7 + 3) % GROUPS, (i * 13 + 5) % GROUPS):
        if f"u{i:06d}" not in members[g][-1:]:
            members[g].append(f"u{i:06d}")


def render_users():
    pages = {}
    for skip in range(0, USERS, PAGE):
        body = {"value": users[skip:skip + PAGE]}
        if skip + PAGE < USERS:
            body["@odata.nextLink"] = f"{BASE}/v1.0/users?%24top=999&%24skiptoken={skip + PAGE}"
        pages[skip] = json.dumps(body).encode()
    return pages


user_pages = render_users()
group_pages = {}
for skip in range(0, GROUPS, PAGE):
    body = {"value": [{"id": f"g{g:04d}", "displayName": f"Group {g:04d}"} for g in range(skip, min(GROUPS, skip + PAGE))]}
    if skip + PAGE < GROUPS:
        body["@odata.nextLink"] = f"{BASE}/v1.0/groups?%24top=999&%24skiptoken={skip + PAGE}"
    group_pages[skip] = json.dumps(body).encode()


def member_page(g):
    return {"value": [{"@odata.type": "#microsoft.graph.user", "id": m} for m in members[g]]}


changed_users, changed_groups = [], []


def delta_page(what, token):
    if token == "latest":
        return {"value": [], "@odata.deltaLink": f"{BASE}/v1.0/{what}/delta?%24deltatoken=0"}
    if token == "1" or not changed_users:
        return {"value": [], "@odata.deltaLink": f"{BASE}/v1.0/{what}/delta?%24deltatoken=1"}
    if what == "users":
        return {"value": [users[i] for i in changed_users], "@odata.deltaLink": f"{BASE}/v1.0/users/delta?%24deltatoken=1"}
    return {"value": [{"id": f"g{g:04d}", "displayName": f"Group {g:04d}", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u000000"}]} for g in changed_groups],
            "@odata.deltaLink": f"{BASE}/v1.0/groups/delta?%24deltatoken=1"}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, body, status=200):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        u = urlsplit(self.path)
        if u.path == "/_change":
            global user_pages
            changed_users[:] = range(0, USERS, 100)  # 1%
            for i in changed_users:
                users[i] = user(i, f"User {i:06d} changed")
            changed_groups[:] = range(0, GROUPS, 100)
            for g in changed_groups:
                members[g].append("u000000")
            user_pages = render_users()
            with lock:
                log.clear()
            return self.send({})
        if u.path == "/_log":
            with lock:
                out = list(log)
                log.clear()
            return self.send(out)
        with lock:
            log.append(["POST", self.path, data.decode()])
        if u.path.endswith("/token"):
            return self.send({"token_type": "Bearer", "expires_in": 3599, "access_token": "bench-token"})
        if u.path == "/v1.0/$batch":
            out = []
            for r in json.loads(data)["requests"]:
                p = urlsplit(r["url"]).path.split("/")
                g = int(p[2][1:])
                out.append({"id": r["id"], "status": 200, "headers": {}, "body": member_page(g)})
            return self.send({"responses": out})
        self.send({"error": {"code": "BadRequest"}}, 400)

    def do_GET(self):
        with lock:
            log.append(["GET", self.path, None])
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        skip = int(q.get("$skiptoken", ["0"])[0])
        if u.path == "/v1.0/users":
            return self.send(user_pages[skip])
        if u.path == "/v1.0/groups":
            return self.send(group_pages[skip])
        if u.path in ("/v1.0/users/delta", "/v1.0/groups/delta"):
            return self.send(delta_page(u.path.split("/")[2], q.get("$deltatoken", ["0"])[0]))
        self.send({"error": {"code": "NotFound"}}, 404)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
