"""Primary and secondary endpoint rules (pure; no network)."""

from __future__ import annotations

import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

from storage import AzureBlobSettings, AzureBlobStore
from storage._azure_endpoints import derive_secondary, resolve, safe_url

SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbA=="


class TestDeriveSecondary:
    @pytest.mark.parametrize(
        ("primary", "secondary"),
        [
            ("https://acct.blob.core.windows.net", "https://acct-secondary.blob.core.windows.net"),
            (
                "https://acct.blob.core.chinacloudapi.cn/",
                "https://acct-secondary.blob.core.chinacloudapi.cn/",
            ),
            (
                "http://127.0.0.1:10000/devstoreaccount1",
                "http://127.0.0.1:10000/devstoreaccount1-secondary",
            ),
            (
                "http://localhost:10000/devstoreaccount1",
                "http://localhost:10000/devstoreaccount1-secondary",
            ),
            (
                "https://acct.blob.core.windows.net?sv=1&sig=x",
                "https://acct-secondary.blob.core.windows.net?sv=1&sig=x",
            ),
        ],
    )
    def test_known_layouts(self, primary: str, secondary: str) -> None:
        """RA-GZRS hosts get '-secondary' on the account; Azurite on the path's account."""
        assert derive_secondary(primary) == secondary

    @pytest.mark.parametrize(
        "primary",
        [
            "https://backups.example.com",
            "https://acct-secondary.blob.core.windows.net",
            "http://127.0.0.1:10000/",
        ],
    )
    def test_no_rule_gives_none(self, primary: str) -> None:
        """Custom domains, secondaries and account-less URLs have no derivable secondary."""
        assert derive_secondary(primary) is None


class TestResolve:
    def test_account_name_and_suffix(self) -> None:
        """AccountName + EndpointSuffix give the standard hosts and a key credential."""
        endpoints = resolve(
            AzureBlobSettings(
                connection_string=f"DefaultEndpointsProtocol=https;AccountName=acct;"
                f"AccountKey={SECRET};EndpointSuffix=core.usgovcloudapi.net"
            )
        )
        assert endpoints.primary == "https://acct.blob.core.usgovcloudapi.net"
        assert endpoints.secondary == "https://acct-secondary.blob.core.usgovcloudapi.net"
        assert isinstance(endpoints.credential, AzureNamedKeyCredential)
        assert SECRET not in repr(endpoints)

    def test_explicit_secondaries_win(self) -> None:
        """BlobSecondaryEndpoint beats derivation; secondary_account_url beats both."""
        text = (
            f"AccountName=acct;AccountKey={SECRET};BlobEndpoint=https://blobs.example.com;"
            "BlobSecondaryEndpoint=https://blobs-ro.example.com"
        )
        assert resolve(AzureBlobSettings(connection_string=text)).secondary == (
            "https://blobs-ro.example.com"
        )
        settings = AzureBlobSettings(
            connection_string=text, secondary_account_url="https://other.example.com"
        )
        assert resolve(settings).secondary == "https://other.example.com"

    def test_development_storage(self) -> None:
        """UseDevelopmentStorage=true points at Azurite's default port and account."""
        endpoints = resolve(AzureBlobSettings(connection_string="UseDevelopmentStorage=true"))
        assert endpoints.primary == "http://127.0.0.1:10000/devstoreaccount1"
        assert endpoints.secondary == "http://127.0.0.1:10000/devstoreaccount1-secondary"

    def test_sas_connection_string(self) -> None:
        """A SharedAccessSignature becomes a SAS credential for both endpoints."""
        endpoints = resolve(
            AzureBlobSettings(
                connection_string=f"BlobEndpoint=https://acct.blob.core.windows.net/;"
                f"SharedAccessSignature=sv=2024&sig={SECRET}"
            )
        )
        assert isinstance(endpoints.credential, AzureSasCredential)
        assert endpoints.secondary == "https://acct-secondary.blob.core.windows.net"

    def test_malformed_connection_string_hides_values(self) -> None:
        """A broken connection string names the bad segment's position, not its text."""
        with pytest.raises(ValueError, match="segment 2") as caught:
            resolve(AzureBlobSettings(connection_string="AccountName=a;pasted-key-material"))
        assert "pasted-key-material" not in str(caught.value)
        with pytest.raises(ValueError, match="neither"):
            resolve(AzureBlobSettings())

    def test_safe_url_drops_sas(self) -> None:
        """The printable form of a URL has no query, so no SAS token."""
        assert safe_url(f"https://a.blob.core.windows.net/?sv=1&sig={SECRET}") == (
            "https://a.blob.core.windows.net"
        )


class TestStoreConstruction:
    def test_account_url_needs_a_credential(self) -> None:
        """account_url without a credential (and without SAS) is refused at construction."""
        with pytest.raises(ValueError, match="credential"):
            AzureBlobStore(AzureBlobSettings(account_url="https://a.blob.core.windows.net"))

    def test_description_hides_sas(self) -> None:
        """A SAS in account_url never reaches the store's description."""
        store = AzureBlobStore(
            AzureBlobSettings(
                account_url=f"https://a.blob.core.windows.net/?sv=1&sig={SECRET}", container="kvdr"
            )
        )
        assert store.description == "azure-blob https://a.blob.core.windows.net/kvdr"
        assert store.secondary_description == "https://a-secondary.blob.core.windows.net/kvdr"
