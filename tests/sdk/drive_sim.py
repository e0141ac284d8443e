"""Drives `closeout sim` with Microsoft's official Graph SDK for Python.

Usage: drive_sim.py BASE_URL KEEP_UPN, with the Graph access token in the
environment variable SIM_TOKEN (a token is a secret: never on the command
line). Lists users across pages, deletes one user that is not the keep
account, reads the subscriptions and subscribed SKUs, disables security
defaults, and prints a JSON summary on stdout for the Rust test to check.
"""

import asyncio
import json
import os
import sys

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.identity_security_defaults_enforcement_policy import (
    IdentitySecurityDefaultsEnforcementPolicy,
)
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from kiota_abstractions.base_request_configuration import RequestConfiguration


class StaticToken(AccessTokenProvider):
    """Hands the SDK the token the simulator's token endpoint issued."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(self, uri, additional_authentication_context=None) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])


async def main() -> None:
    base, keep = sys.argv[1], sys.argv[2]
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken(os.environ["SIM_TOKEN"])))
    adapter.base_url = base.rstrip("/") + "/v1.0"
    client = GraphServiceClient(request_adapter=adapter)

    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        top=3, select=["id", "userPrincipalName", "accountEnabled"]
    )
    page = await client.users.get(request_configuration=RequestConfiguration(query_parameters=query))
    users, pages = [], 0
    while page is not None:
        pages += 1
        users.extend(page.value or [])
        if not page.odata_next_link:
            break
        page = await client.users.with_url(page.odata_next_link).get()

    victim = next(u for u in users if u.user_principal_name.lower() != keep.lower())
    await client.users.by_user_id(victim.id).delete()

    subs = await client.directory.subscriptions.get()
    skus = await client.subscribed_skus.get()
    await client.policies.identity_security_defaults_enforcement_policy.patch(
        IdentitySecurityDefaultsEnforcementPolicy(is_enabled=False)
    )
    policy = await client.policies.identity_security_defaults_enforcement_policy.get()

    print(json.dumps({
        "users": [u.id for u in users],
        "pages": pages,
        "all_enabled": all(u.account_enabled for u in users),
        "deleted": victim.id,
        "subscriptions": [{"id": s.id, "status": s.status, "sku": s.sku_part_number} for s in subs.value],
        "skus": [s.sku_part_number for s in skus.value],
        "security_defaults": policy.is_enabled,
    }))


asyncio.run(main())
