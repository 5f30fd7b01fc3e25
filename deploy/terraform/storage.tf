# Backup and control storage: checkpoints, pair leases, the journal, snapshots and the
# control record. The backup account is RA-GZRS: zone-redundant at home and readable in
# the paired region, so `kvdr snapshot list` and `kvdr restore` work while the home region
# is down. With control_regions, two more accounts hold the three-store control record
# (issue 11): every region switch then needs a majority of compare-and-swaps.
locals {
  storage_accounts = merge(
    {
      backup = {
        name      = "${var.name_prefix}kvdrbackup"
        location  = local.home_region
        container = var.storage_container
      }
    },
    {
      for i, r in var.control_regions : "control${i + 1}" => {
        name      = "${var.name_prefix}kvdrctl${i + 1}"
        location  = r
        container = "kvdr-control"
      }
    },
  )
}

resource "azurerm_storage_account" "storage" {
  for_each            = local.storage_accounts
  name                = each.value.name
  location            = each.value.location
  resource_group_name = data.azurerm_resource_group.kvdr.name
  account_kind        = "StorageV2"
  account_tier        = "Standard"
  # The control accounts are in regions of their own, zone- and geo-redundant too.
  account_replication_type          = each.key == "backup" ? var.storage_replication : "GZRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  public_network_access_enabled     = var.public_network_access
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = var.blob_soft_delete_days
    }
    container_delete_retention_policy {
      days = var.blob_soft_delete_days
    }
  }
  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
    ip_rules       = var.allowed_ip_ranges
  }
  sas_policy {
    expiration_period = "0.01:00:00"
  }
  tags = local.tags
}

resource "azurerm_storage_container" "storage_container" {
  for_each              = local.storage_accounts
  name                  = each.value.container
  storage_account_id    = azurerm_storage_account.storage[each.key].id
  container_access_type = "private"
}

resource "azurerm_storage_container_immutability_policy" "backup_worm" {
  count                                 = var.backup_immutability_days > 0 ? 1 : 0
  storage_container_resource_manager_id = azurerm_storage_container.storage_container["backup"].id
  immutability_period_in_days           = var.backup_immutability_days
  protected_append_writes_enabled       = false
}

# Versioning keeps every overwritten or deleted blob; kvdr's retention deletes what it
# no longer needs, and this rule makes those deletions final after a grace period.
resource "azurerm_storage_management_policy" "storage_versions" {
  for_each           = local.storage_accounts
  storage_account_id = azurerm_storage_account.storage[each.key].id
  rule {
    name    = "expire-old-versions"
    enabled = true
    filters {
      blob_types = ["blockBlob"]
    }
    actions {
      version {
        delete_after_days_since_creation = var.blob_version_retention_days
      }
    }
  }
}

# Who read, wrote or deleted which blob: the storage side of the audit trail.
resource "azurerm_monitor_diagnostic_setting" "storage_blob_audit" {
  for_each                   = local.storage_accounts
  name                       = "kvdr-blob-audit"
  target_resource_id         = "${azurerm_storage_account.storage[each.key].id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.audit.id
  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}
