"""List all users, groups and group memberships through Okta's Python SDK (`okta`)."""
import asyncio, json, os

from okta.client import Client as OktaClient


async def drain(coro):
    items, resp, err = await coro
    if err:
        raise SystemExit(f"okta error: {err}")
    items = list(items)
    while resp.has_next():
        more, err = await resp.next()
        if err:
            raise SystemExit(f"okta error: {err}")
        items.extend(more)
    return items


async def main():
    client = OktaClient({"orgUrl": os.environ["PEER_BASE_URL"], "token": os.environ["PEER_TOKEN"]})
    users = await drain(client.list_users(limit=200))
    groups = await drain(client.list_groups(limit=10000))
    memberships = 0
    for g in groups:
        memberships += len(await drain(client.list_group_users(g.id, limit=1000)))
    print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))


asyncio.run(main())
