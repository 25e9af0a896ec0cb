"""List all users, groups and group members through `google-api-python-client`."""
import json, os

from google.oauth2 import service_account
from googleapiclient.discovery import build

SCOPES = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
]
with open(os.environ["PEER_KEY_FILE"]) as fh:
    key = json.load(fh)
key["token_uri"] = os.environ["PEER_TOKEN_URL"]  # the emulator's token endpoint
creds = service_account.Credentials.from_service_account_info(
    key, scopes=SCOPES, subject=os.environ["PEER_ADMIN_EMAIL"]
)
svc = build(
    "admin", "directory_v1", credentials=creds, static_discovery=True,
    client_options={"api_endpoint": os.environ["PEER_ROOT_URL"]},
)


def drain(method, key, **kw):
    out, token = [], None
    while True:
        # num_retries: back off on 429/403 rate-limit answers, as Google's documentation advises
        page = method(pageToken=token, **kw).execute(num_retries=8)
        out.extend(page.get(key, []))
        token = page.get("nextPageToken")
        if not token:
            return out


users = drain(svc.users().list, "users", customer="my_customer", maxResults=500)
groups = drain(svc.groups().list, "groups", customer="my_customer", maxResults=200)
memberships = sum(len(drain(svc.members().list, "members", groupKey=g["id"], maxResults=200)) for g in groups)
print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))
