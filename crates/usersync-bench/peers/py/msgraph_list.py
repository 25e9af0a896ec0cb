"""List all users, groups and group members through `msgraph-sdk` (Python) with `azure-identity`.
The emulator is served over https with a private CA (SSL_CERT_FILE / REQUESTS_CA_BUNDLE)."""
import asyncio, json, os
from urllib.parse import urlparse

from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

BASE = os.environ["PEER_BASE_URL"]  # https://localhost:PORT


async def drain(builder, config=None):
    items = []
    page = await builder.get(request_configuration=config) if config else await builder.get()
    while True:
        items.extend(page.value or [])
        if not page.odata_next_link:
            return items
        page = await builder.with_url(page.odata_next_link).get()


async def main():
    cred = ClientSecretCredential(
        os.environ["PEER_TENANT_ID"], os.environ["PEER_CLIENT_ID"], os.environ["PEER_CLIENT_SECRET"],
        authority=BASE, disable_instance_discovery=True,
    )
    auth = AzureIdentityAuthenticationProvider(
        cred, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=[urlparse(BASE).hostname]
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = BASE + "/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    ucfg = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(top=999)
    )
    gcfg = RequestConfiguration(
        query_parameters=GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(top=999)
    )
    users = await drain(client.users, ucfg)
    groups = await drain(client.groups, gcfg)
    memberships = 0
    for g in groups:
        memberships += len(await drain(client.groups.by_group_id(g.id).members))
    await cred.close()
    print(json.dumps({"users": len(users), "groups": len(groups), "memberships": memberships}))


asyncio.run(main())
