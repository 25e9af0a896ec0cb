"""List all users, groups and group memberships through Okta's Python SDK (`okta`, 3.x),
following the `Link: rel="next"` cursor."""
import asyncio, json, os, re
from urllib.parse import parse_qs, urlparse

from okta.client import Client as OktaClient


def after_of(resp):
    """The `after` cursor of the `Link: <...>; rel="next"` header (the 3.x SDK's ApiResponse has
    no has_next/next, so paging is done the way Okta documents it)."""
    headers = getattr(resp, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() != "link":
            continue
        for part in value.split(","):
            m = re.match(r'\s*<([^>]+)>\s*;\s*rel="next"', part)
            if m:
                return parse_qs(urlparse(m.group(1)).query).get("after", [None])[0]
    return None


async def drain(call, **kw):
    items, after = [], None
    while True:
        page, resp, err = await call(**kw, **({"after": after} if after else {}))
        if err:
            raise SystemExit(f"okta error: {err}")
        items.extend(page or [])
        after = after_of(resp)
        if not after:
            return items


async def main():
    # okta 3.4.x builds the header as "SSWS" + token, without the space Okta documents
    # ("Authorization: SSWS {token}"); a leading space in the token restores it.
    client = OktaClient({"orgUrl": os.environ["PEER_BASE_URL"], "token": " " + os.environ["PEER_TOKEN"]})
    users = await drain(client.list_users, limit=200)
    groups = await drain(client.list_groups, limit=10000)
    memberships = 0
    for g in groups:
        memberships += len(await drain(client.list_group_users, group_id=g.id, limit=1000))
    print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))


asyncio.run(main())
