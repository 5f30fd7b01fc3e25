# Private endpoints: every vault and storage account in a region that has a subnet in
# private_endpoint_subnet_ids (with public network access off, the only way in). Two
# resources, not one over a merged map: checkov's private-endpoint checks follow only a
# direct reference from the endpoint to its vault or account.
resource "azurerm_private_endpoint" "vault_pe" {
  for_each            = { for r in var.regions : r => r if contains(keys(var.private_endpoint_subnet_ids), r) }
  name                = "${local.vault_names[each.key]}-pe"
  location            = each.key
  resource_group_name = data.azurerm_resource_group.kvdr.name
  subnet_id           = var.private_endpoint_subnet_ids[each.key]
  private_service_connection {
    name                           = "${local.vault_names[each.key]}-vault"
    private_connection_resource_id = azurerm_key_vault.vault[each.key].id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
  tags = local.tags
}

resource "azurerm_private_endpoint" "storage_pe" {
  for_each            = { for k, a in local.storage_accounts : k => a if contains(keys(var.private_endpoint_subnet_ids), a.location) }
  name                = "${each.value.name}-pe"
  location            = each.value.location
  resource_group_name = data.azurerm_resource_group.kvdr.name
  subnet_id           = var.private_endpoint_subnet_ids[each.value.location]
  private_service_connection {
    name                           = "${each.value.name}-blob"
    private_connection_resource_id = azurerm_storage_account.storage[each.key].id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }
  tags = local.tags
}
