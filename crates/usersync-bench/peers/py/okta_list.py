"""List all users, groups and group memberships through Okta's Python SDK (`okta`, 3.x).
The 3.x SDK returns the raw HTTP response with each page; the next page is requested with the
`after` cursor from its `Link: rel="next"` header, as Okta's documentation describes."""
import asyncio, json, os
from urllib.parse import parse_qs, urlparse

from okta.client import Client as OktaClient


def after_of(resp):
    nxt = resp.links.get("next") if resp is not None else None
    if not nxt:
        return None
    return parse_qs(urlparse(str(nxt.get("url"))).query).get("after", [None])[0]


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
    client = OktaClient({"orgUrl": os.environ["PEER_BASE_URL"], "token": os.environ["PEER_TOKEN"]})
    users = await drain(client.list_users, limit=200)
    groups = await drain(client.list_groups, limit=10000)
    memberships = 0
    for g in groups:
        memberships += len(await drain(client.list_group_users, group_id=g.id, limit=1000))
    print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))


asyncio.run(main())
