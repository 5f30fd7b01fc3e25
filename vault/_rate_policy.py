"""The azure-core pipeline policy that puts every HTTP request under a `RateController`.

It sits right after the SDK's retry policy (which the adapter configures with
`retry_total=0`, so it never retries) and sees each HTTP request exactly once: pages of a
listing and the polls of a delete or recover included. It takes a concurrency slot and
a budget grant, sends, then reports the outcome to the controller and to the metrics.
It never retries: `RateController.run()`, around the whole SDK call, does that.

It runs before the SDK's authentication policy, so the one unauthenticated request a
client sends to learn the vault's challenge rides in the same admission as the request
it precedes (once per client, three per adapter): the only requests not counted alone.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy

from vault import metrics
from vault._azure_errors import map_azure_error, parse_retry_after
from vault.rate import Budget, RateController

# The adapter operation a request belongs to ("set_secret", "list_items", ...). Set by the
# adapter around each SDK call; the SDK runs its requests (and pollers) in the same task.
CURRENT_OP: ContextVar[str] = ContextVar("kvdr_vault_op", default="other")


def budget_of(method: str, url: str, base_path: str = "") -> Budget:
    """Which budget a request spends: `PUT /secrets/{name}` is a secret create."""
    path = urlsplit(url).path
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    parts = [p for p in path.split("/") if p]
    if method.upper() == "PUT" and len(parts) == 2 and parts[0] == "secrets":
        return Budget.SECRET_CREATE
    return Budget.OTHER


class RateControlPolicy(AsyncHTTPPolicy[Any, Any]):
    """Admits, times and counts each HTTP request to one vault.

    One instance per SDK client: a pipeline links its policies through `next`.
    """

    def __init__(self, controller: RateController, vault_url: str) -> None:
        super().__init__()
        self._rate = controller
        self._vault = controller.vault
        self._base_path = urlsplit(vault_url).path.rstrip("/")

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        http = request.http_request
        op = CURRENT_OP.get()
        budget = budget_of(http.method, http.url, self._base_path)
        async with self._rate.request(budget) as ticket:
            started = time.perf_counter()
            try:
                response = await self.next.send(request)
            except AzureError as exc:
                ticket.failed()
                code = map_azure_error(exc, vault=self._vault, op=op).reason
                self._record(op, code, started)
                raise
            status: int = response.http_response.status_code
            if status == 429:
                metrics.THROTTLED.labels(self._vault).inc()
                ticket.throttled(parse_retry_after(response.http_response.headers))
            elif status >= 500:
                ticket.failed()
            else:
                ticket.succeeded()
            self._record(op, str(status), started)
            return response

    def _record(self, op: str, code: str, started: float) -> None:
        metrics.REQUESTS.labels(self._vault, op, code).inc()
        metrics.REQUEST_DURATION.labels(self._vault, op).observe(time.perf_counter() - started)
