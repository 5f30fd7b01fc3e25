# Backup and control storage: checkpoints, pair leases, the journal, snapshots and the
# control record. RA-GZRS: zone-redundant at home and readable in the paired region, so
# `kvdr snapshot list` and `kvdr restore` work while the home region is down.
resource "azurerm_storage_account" "backup" {
  name                              = "${var.name_prefix}kvdrbackup"
  location                          = local.home_region
  resource_group_name               = data.azurerm_resource_group.kvdr.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.storage_replication
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

resource "azurerm_storage_container" "backup_container" {
  name                  = var.storage_container
  storage_account_id    = azurerm_storage_account.backup.id
  container_access_type = "private"
}

resource "azurerm_storage_container_immutability_policy" "backup_worm" {
  count                                 = var.backup_immutability_days > 0 ? 1 : 0
  storage_container_resource_manager_id = azurerm_storage_container.backup_container.id
  immutability_period_in_days           = var.backup_immutability_days
  protected_append_writes_enabled       = false
}

# Versioning keeps every overwritten or deleted blob; kvdr's retention deletes what it
# no longer needs, and this rule makes those deletions final after a grace period.
resource "azurerm_storage_management_policy" "backup_versions" {
  storage_account_id = azurerm_storage_account.backup.id
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

resource "azurerm_private_endpoint" "backup_pe" {
  count               = contains(keys(var.private_endpoint_subnet_ids), local.home_region) ? 1 : 0
  name                = "${var.name_prefix}kvdrbackup-pe"
  location            = local.home_region
  resource_group_name = data.azurerm_resource_group.kvdr.name
  subnet_id           = var.private_endpoint_subnet_ids[local.home_region]
  private_service_connection {
    name                           = "${var.name_prefix}kvdrbackup-blob"
    private_connection_resource_id = azurerm_storage_account.backup.id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }
  tags = local.tags
}

# Two more small accounts for the three-store control record (issue 11): every region
# switch then needs a majority of compare-and-swaps, so losing one region loses no quorum.
resource "azurerm_storage_account" "control" {
  for_each                          = local.control_regions
  name                              = "${var.name_prefix}kvdrctl${each.key}"
  location                          = each.value
  resource_group_name               = data.azurerm_resource_group.kvdr.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "GZRS"
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

resource "azurerm_storage_container" "control_container" {
  for_each              = local.control_regions
  name                  = "kvdr-control"
  storage_account_id    = azurerm_storage_account.control[each.key].id
  container_access_type = "private"
}

resource "azurerm_private_endpoint" "control_pe" {
  for_each            = { for i, r in local.control_regions : i => r if contains(keys(var.private_endpoint_subnet_ids), r) }
  name                = "${var.name_prefix}kvdrctl${each.key}-pe"
  location            = each.value
  resource_group_name = data.azurerm_resource_group.kvdr.name
  subnet_id           = var.private_endpoint_subnet_ids[each.value]
  private_service_connection {
    name                           = "${var.name_prefix}kvdrctl${each.key}-blob"
    private_connection_resource_id = azurerm_storage_account.control[each.key].id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }
  tags = local.tags
}

# Who read, wrote or deleted which backup blob: the storage side of the audit trail.
resource "azurerm_monitor_diagnostic_setting" "backup_blob_audit" {
  name                       = "kvdr-blob-audit"
  target_resource_id         = "${azurerm_storage_account.backup.id}/blobServices/default"
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

resource "azurerm_monitor_diagnostic_setting" "control_blob_audit" {
  for_each                   = local.control_regions
  name                       = "kvdr-blob-audit"
  target_resource_id         = "${azurerm_storage_account.control[each.key].id}/blobServices/default"
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
