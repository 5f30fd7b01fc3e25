# kvdr on Azure: vaults per region, backup and control storage, the daemon's identity
# and its least-privilege roles, Event Grid delivery, audit logs and an optional Chaos
# Studio experiment. deploy/bicep/ declares the same resources (tests/deploy compares).
terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.42" # rbac_authorization_enabled arrived in 4.42
    }
  }
}

provider "azurerm" {
  features {
    key_vault {
      # A DR tool must never be the thing that purges a vault on `terraform destroy`.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
  }
  # Shared-key access is off on every account; the provider must use Entra ID for blobs.
  storage_use_azuread = true
}
