"""`AuditedVault`: a vault whose every write kvdr sends is one audit entry.

The daemon (and `kvdr sync`, and a restore) wraps each target vault in it, so every
mirror write, delete, recover, purge and restore of an item is recorded where it happens,
item by item, without the replicator or the backups knowing of the trail (DESIGN.md
"Layout": they may not import each other). Reads pass straight through. An entry names
the call, the item (hashed when the pair hides names), the region and the outcome; never
an argument that carries material (a value, a backup blob, certificate bytes), and for a
failure only the error's type, since a message may quote what the vault answered.
"""

from __future__ import annotations

from typing import Any, cast

from kvdr.audit_trail import AuditRecorder
from vault.client import VaultClient
from vault.models import ItemKind, ItemProperties
from vault.write_gate import WriteCall, WriteCallWrapper

# The calls whose first argument is the item's kind, and their second its name.
_KIND_THEN_NAME = frozenset({"update_properties", "delete_item", "recover_item", "purge_item"})
# The calls whose first argument is a name of a fixed kind.
_NAMED = {
    "set_secret": "secret",
    "set_rotation_policy": "key",
    "set_certificate_policy": "certificate",
    "import_certificate": "certificate",
}


def _item(call: str, args: tuple[Any, ...], result: Any) -> tuple[str, str] | None:
    if call in _KIND_THEN_NAME and len(args) >= 2 and isinstance(args[0], ItemKind):
        return args[0].value, str(args[1])
    if call in _NAMED and args:
        return _NAMED[call], str(args[0])
    if isinstance(result, ItemProperties):  # restore_item: the backup names the item
        return result.kind.value, result.name
    if call == "restore_item" and args and isinstance(args[0], ItemKind):
        return args[0].value, "?"
    return None


class AuditedVault(WriteCallWrapper):
    """`vault` (the `region` of `pair`), each write recorded as `<prefix>.<call>`."""

    def __init__(
        self,
        vault: VaultClient,
        recorder: AuditRecorder,
        *,
        pair: str,
        region: str,
        prefix: str = "mirror",
    ) -> None:
        super().__init__(vault)
        self._recorder = recorder
        self._pair = pair
        self._region = region
        self._prefix = prefix

    def _around(self, name: str, call: WriteCall) -> WriteCall:
        async def audited(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await call(*args, **kwargs)
            except Exception as exc:
                self._note(name, args, None, "failed", {"error": type(exc).__name__})
                raise
            self._note(name, args, result, "ok", {})
            return result

        return audited

    def _note(
        self, call: str, args: tuple[Any, ...], result: Any, outcome: str, extra: dict[str, str]
    ) -> None:
        detail: dict[str, Any] = {"region": self._region, **extra}
        if isinstance(result, ItemProperties):
            detail["version"] = result.version
        self._recorder.record(
            f"{self._prefix}.{call}",
            outcome,
            pair=self._pair,
            item=_item(call, args, result),
            detail=detail,
        )

    @classmethod
    def wrap(
        cls,
        vault: VaultClient,
        recorder: AuditRecorder,
        *,
        pair: str,
        region: str,
        prefix: str = "mirror",
    ) -> VaultClient:
        """`vault`, audited, typed as the seam it stands for (no-op without a trail)."""
        if not recorder.enabled:
            return vault
        return cast(VaultClient, cls(vault, recorder, pair=pair, region=region, prefix=prefix))
