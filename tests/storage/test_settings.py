"""Storage settings: bad values are refused with the field named, secrets never shown."""

from __future__ import annotations

import pytest

from storage import AzureBlobSettings, LocalFolderSettings

SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbA=="


class TestAzureBlobSettings:
    @pytest.mark.parametrize(
        "container",
        ["ab", "Upper", "has_underscore", "-lead", "trail-", "double--hyphen", "x" * 64],
    )
    def test_bad_container_names(self, container: str) -> None:
        """Container names outside Azure's rule are refused, naming the container."""
        with pytest.raises(ValueError, match="container"):
            AzureBlobSettings(container=container, account_url="https://a.blob.core.windows.net")

    def test_good_container_names(self) -> None:
        """3-63 lowercase letters, digits and single hyphens are accepted."""
        for container in ["kvdr", "abc", "kvdr-backups-2", "a" * 63]:
            assert AzureBlobSettings(container=container).container == container

    def test_connection_string_and_account_url_exclude_each_other(self) -> None:
        """Giving both sources is refused without echoing the connection string."""
        with pytest.raises(ValueError, match="not both") as caught:
            AzureBlobSettings(
                connection_string=f"AccountName=a;AccountKey={SECRET}",
                account_url="https://a.blob.core.windows.net",
            )
        assert SECRET not in str(caught.value)

    def test_url_must_be_http(self) -> None:
        """account_url and secondary_account_url must be http(s) URLs; SAS is not shown."""
        with pytest.raises(ValueError, match="account_url"):
            AzureBlobSettings(account_url="a.blob.core.windows.net")
        with pytest.raises(ValueError, match="secondary_account_url") as caught:
            AzureBlobSettings(secondary_account_url=f"ftp://host/?sig={SECRET}")
        assert SECRET not in str(caught.value)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("retries", -1),
            ("retries", 1.5),
            ("connect_timeout_seconds", 0),
            ("primary_retry_seconds", -3),
        ],
    )
    def test_bad_numbers(self, field: str, value: object) -> None:
        """Negative retries and non-positive timeouts are refused, naming the field."""
        with pytest.raises(ValueError, match=field):
            AzureBlobSettings(**{field: value})  # type: ignore[arg-type]

    def test_repr_hides_connection_string(self) -> None:
        """The settings' repr never shows the connection string (it holds the key)."""
        settings = AzureBlobSettings(connection_string=f"AccountName=a;AccountKey={SECRET}")
        assert SECRET not in repr(settings)


class TestLocalFolderSettings:
    def test_empty_path_is_refused(self) -> None:
        """An empty folder path is refused with a clear message."""
        with pytest.raises(ValueError, match="path"):
            LocalFolderSettings(path=" ")
