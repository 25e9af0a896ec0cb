"""List all users, groups and memberships through OneLogin's Python SDK (`onelogin`, 4.x).
A OneLogin user has one group (`group_id`), read from the user listing (as usersync does)."""
import json, os

import onelogin
from onelogin.api.o_auth2_api import OAuth2Api
from onelogin.api.groups_api import GroupsApi
from onelogin.api.users_v2_api import UsersV2Api
from onelogin.models.generate_token_request import GenerateTokenRequest

cfg = onelogin.Configuration(
    host=os.environ["PEER_BASE_URL"],
    username=os.environ["PEER_CLIENT_ID"],
    password=os.environ["PEER_CLIENT_SECRET"],
)
with onelogin.ApiClient(cfg) as api:
    token = OAuth2Api(api).generate_token(GenerateTokenRequest(grant_type="client_credentials"))
    cfg.access_token = token.access_token
    users_api = UsersV2Api(api)
    users, cursor = [], None
    while True:
        kw = {"cursor": cursor} if cursor else {"limit": 50}  # cursor xor paging arguments
        r = users_api.list_users2_with_http_info(**kw)
        users.extend(r.data or [])
        cursor = (r.headers or {}).get("After-Cursor") or (r.headers or {}).get("after-cursor")
        if not cursor:
            break
    groups_api = GroupsApi(api)
    groups, cursor = [], None
    while True:
        r = groups_api.get_groups(**({"after_cursor": cursor} if cursor else {}))
        groups.extend(r.data or [])
        cursor = r.pagination.after_cursor if getattr(r, "pagination", None) else None
        if not cursor:
            break
    memberships = sum(1 for u in users if getattr(u, "group_id", None))
    print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))
