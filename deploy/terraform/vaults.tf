# One vault per region. Purge protection on: nobody (kvdr included) can purge an item
# inside the retention period, which is what makes a mass deletion recoverable.
resource "azurerm_key_vault" "vault" {
  for_each                      = toset(var.regions)
  name                          = local.vault_names[each.key]
  location                      = each.key
  resource_group_name           = data.azurerm_resource_group.kvdr.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = var.vault_sku
  soft_delete_retention_days    = var.soft_delete_retention_days
  purge_protection_enabled      = true
  rbac_authorization_enabled    = true
  public_network_access_enabled = var.public_network_access
  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
    ip_rules       = var.allowed_ip_ranges
  }
  tags = local.tags
}

# Audit logs (every data-plane call, including kvdr's) and metrics of every vault.
resource "azurerm_monitor_diagnostic_setting" "vault_audit" {
  for_each                   = toset(var.regions)
  name                       = "kvdr-audit"
  target_resource_id         = azurerm_key_vault.vault[each.key].id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.audit.id
  enabled_log {
    category_group = "audit"
  }
  enabled_metric {
    category = "AllMetrics"
  }
}
