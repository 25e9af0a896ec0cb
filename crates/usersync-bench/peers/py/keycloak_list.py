"""List all users, groups (with sub-groups) and group members through `python-keycloak`."""
import json, os

from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

conn = KeycloakOpenIDConnection(
    server_url=os.environ["PEER_BASE_URL"],
    realm_name=os.environ["PEER_REALM"],
    client_id=os.environ["PEER_CLIENT_ID"],
    client_secret_key=os.environ["PEER_CLIENT_SECRET"],
    verify=True,
)
admin = KeycloakAdmin(connection=conn)
users = admin.get_users({})  # python-keycloak pages through all users itself
top = admin.get_groups({"briefRepresentation": "true"})
groups, stack = [], list(top)
while stack:
    g = stack.pop()
    groups.append(g)
    if g.get("subGroupCount", 0) or g.get("subGroups"):
        stack.extend(admin.get_group_children(g["id"]))
memberships = 0
for g in groups:
    memberships += len(admin.get_group_members(g["id"]))
print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))
