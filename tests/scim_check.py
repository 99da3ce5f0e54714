"""scim2-tester (PyPI) against a running `dirsync serve`: every check of
check_server (discovery, CRUD, PATCH add/remove/replace on every attribute
of the published schemas, attribute projection, /.search), one JSON line a
result. Run by tests/it/scim.rs with the virtualenv scripts/test.sh makes.

    python scim_check.py BASE_URL TOKEN
"""
import json
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server

base, token = sys.argv[1], sys.argv[2]
client = SyncSCIMClient(Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30))
for r in check_server(client):
    print(json.dumps({"status": r.status.name, "title": r.title, "reason": r.reason or ""}), flush=True)
