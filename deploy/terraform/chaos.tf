# Optional: an Azure Chaos Studio experiment with the Key Vault Deny Access fault on the
# primary vault, for drills against real Azure alongside `kvdr drill run` (docs/deploy.md,
# "Drills on Azure").
resource "azurerm_chaos_studio_target" "chaos_target" {
  count              = var.chaos_experiment ? 1 : 0
  location           = var.primary_region
  target_resource_id = azurerm_key_vault.vault[var.primary_region].id
  target_type        = "Microsoft-KeyVault"
}

resource "azurerm_chaos_studio_capability" "chaos_deny_access" {
  count                  = var.chaos_experiment ? 1 : 0
  chaos_studio_target_id = azurerm_chaos_studio_target.chaos_target[0].id
  capability_type        = "DenyAccess-1.0"
}

resource "azurerm_chaos_studio_experiment" "chaos_deny_primary" {
  count               = var.chaos_experiment ? 1 : 0
  name                = "${var.name_prefix}-kvdr-deny-primary"
  location            = var.primary_region
  resource_group_name = data.azurerm_resource_group.kvdr.name
  identity {
    type = "SystemAssigned"
  }
  selectors {
    name                    = "primary-vault"
    chaos_studio_target_ids = [azurerm_chaos_studio_target.chaos_target[0].id]
  }
  steps {
    name = "deny-primary"
    branch {
      name = "deny-primary"
      actions {
        action_type   = "continuous"
        selector_name = "primary-vault"
        urn           = azurerm_chaos_studio_capability.chaos_deny_access[0].urn
        duration      = var.drill_duration
      }
    }
  }
}

# Deny Access rewrites the vault's network configuration for the fault's duration and
# restores it after: that is a control-plane write on this one vault.
resource "azurerm_role_assignment" "chaos_vault_contributor" {
  count                = var.chaos_experiment ? 1 : 0
  scope                = azurerm_key_vault.vault[var.primary_region].id
  role_definition_name = "Key Vault Contributor"
  principal_id         = azurerm_chaos_studio_experiment.chaos_deny_primary[0].identity[0].principal_id
  principal_type       = "ServicePrincipal"
}
