"""The RBAC middleware: in RBAC mode, every vault and management-plane request carries a
valid signed token and its principal holds a role with the operation's action
(emulator/rbac.py); otherwise 401 or 403 `ForbiddenByRbac`. Without RBAC mode it does
nothing. It runs after the bearer challenge, so a token-less request still gets the
challenge the SDKs expect."""

from __future__ import annotations

from aiohttp import web

from emulator.arm import is_arm_path
from emulator.auth import MANAGEMENT_PREFIX, PRINCIPAL_KEY, VAULT_RESOURCE
from emulator.errors import Handler
from emulator.rbac import forbidden_by_rbac
from emulator.state import STATE_KEY

MANAGEMENT_RESOURCE = "https://management.azure.com"


@web.middleware
async def rbac_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    rbac = state.rbac
    if rbac is None or request.path.startswith(MANAGEMENT_PREFIX):
        return await handler(request)
    route = request.match_info.route.name
    if not route:
        # No such operation: the router's 404 or 405, as Key Vault answers it.
        return await handler(request)
    arm = is_arm_path(request.path)
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()
    principal = rbac.principal(token, MANAGEMENT_RESOURCE if arm else VAULT_RESOURCE)
    request[PRINCIPAL_KEY] = principal
    operation = route if arm else route.split(":", 1)[0]
    allowed, action = rbac.allows(principal, operation)
    if not allowed:
        raise forbidden_by_rbac(principal, action, state.settings.vault_name, rbac.region)
    return await handler(request)
