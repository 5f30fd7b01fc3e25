"""Fencing as the transition commands do it: the configured fence action, what it did
to each region, and what the control record must say about it afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.control_record import ControlRecord, Fence
    from failover.fencing import FenceAction
    from kvdr.config import KvdrConfig


class Fencer:
    """Applies and lifts fences for one command; `updates` is what the record must
    say of each region it touched, `notes` what it did (for the output)."""

    def __init__(self, action: FenceAction, kind: str) -> None:
        self.action = action
        self.kind = kind
        self.updates: dict[str, tuple[Fence, dict[str, Any] | None]] = {}
        self.notes: list[str] = []
        self.warnings: list[str] = []

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    async def apply(self, region: str) -> bool:
        """Fence `region`; False (the fence owed, a warning) when it cannot be done."""
        from failover.fencing import FenceError

        if not self.enabled:
            return True
        try:
            result = await self.action.apply(region)
        except FenceError as exc:
            self.updates[region] = ("required", None)
            self.warnings.append(
                f"{region} could not be fenced ({exc}); the daemon fences it as soon as it "
                "answers, before kvdr writes to it"
            )
            return False
        self.updates[region] = ("applied", result.saved or {})
        self.notes.append(result.done)
        return True

    async def lift(self, region: str, record: ControlRecord) -> bool:
        """Lift `region`'s fence as the record saved it; False (a warning) on failure."""
        from failover.fencing import FenceError

        if not self.enabled or record.fences.get(region) == "none":
            return True
        try:
            result = await self.action.lift(region, record.fence_saved.get(region))
        except FenceError as exc:
            self.warnings.append(
                f"the fence on {region} could not be lifted ({exc}): applications cannot "
                f"write to the new primary until it is (docs/runbooks)"
            )
            return False
        self.updates[region] = ("none", None)
        self.notes.append(result.done)
        return True

    def doc(self) -> dict[str, Any]:
        return {"action": self.kind, "done": list(self.notes)}


@asynccontextmanager
async def open_fencer(config: KvdrConfig, regions: Sequence[str]) -> AsyncIterator[Fencer]:
    """The configured fence action over `regions`."""
    from failover.fencing import open_fence
    from vault.credentials import build_credential

    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        refs: Mapping[str, Any] = {r: config.regions[r] for r in regions}
        action = await stack.enter_async_context(
            open_fence(config.failover, refs, credential, config.vault.ca_file)
        )
        yield Fencer(action, config.failover.fence)
