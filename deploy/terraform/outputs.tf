# Everything kvdr's configuration file needs, and nothing secret: render it with
#   terraform output -json | python deploy/render_config.py - > kvdr.toml
# (docs/deploy.md). The Bicep deployment has outputs of the same names and shapes.

output "kvdr_credential" {
  description = "[credential]: the daemon's user-assigned managed identity."
  value = {
    kind      = "managed-identity"
    client_id = azurerm_user_assigned_identity.daemon.client_id
  }
}

output "kvdr_regions" {
  description = "[regions.<name>]: each region's vault URL, tier and ARM id (resource_id, for the management plane: fence and failover check), the first region first."
  value = [
    for r in var.regions : {
      region      = r
      vault_url   = azurerm_key_vault.vault[r].vault_uri
      sku         = var.vault_sku
      resource_id = azurerm_key_vault.vault[r].id
    }
  ]
}

output "kvdr_storage" {
  description = "[storage]: the backup account's blob endpoints (the secondary only on RA- redundancy) and container."
  value = {
    account_url           = azurerm_storage_account.storage["backup"].primary_blob_endpoint
    secondary_account_url = startswith(var.storage_replication, "RA") ? azurerm_storage_account.storage["backup"].secondary_blob_endpoint : null
    container             = azurerm_storage_container.storage_container["backup"].name
  }
}

output "kvdr_pair" {
  description = "[[pairs]]: the pair this deployment serves; every other region is a secondary."
  value = {
    name    = var.pair_name
    primary = var.primary_region
    kinds   = var.kinds
  }
}

output "kvdr_backup_keks" {
  description = "[[backups.keks]]: one key-encryption key per region (create each key once, docs/deploy.md)."
  value       = [for r in var.regions : { region = r, key = "kvdr-backup" }]
}

output "kvdr_control_stores" {
  description = "The two extra control-record stores ([failover] control_stores with the backup account); empty for one store."
  value = [
    for k, account in local.storage_accounts : {
      region      = account.location
      account_url = azurerm_storage_account.storage[k].primary_blob_endpoint
      container   = azurerm_storage_container.storage_container[k].name
    } if k != "backup"
  ]
}

output "kvdr_fence" {
  description = "[failover] fence and fence_allow_ips: the fence action and kvdr's outbound addresses a fenced vault still admits."
  value = {
    action    = var.fence
    allow_ips = var.fence_allow_ips
  }
}

output "daemon_principal_id" {
  description = "Object id of the daemon's identity (for role assignments made elsewhere)."
  value       = azurerm_user_assigned_identity.daemon.principal_id
}

output "log_analytics_workspace_id" {
  description = "Workspace receiving the vaults' audit logs and metrics."
  value       = azurerm_log_analytics_workspace.audit.id
}
