locals {
  home_region = var.regions[0]
  secondaries = [for r in var.regions : r if r != var.primary_region]
  # Key Vault names are 3-24 characters and global; region names make them readable.
  vault_names          = { for r in var.regions : r => substr("${var.name_prefix}-${r}", 0, 24) }
  mirrors_keys         = contains(var.kinds, "key")
  mirrors_certificates = contains(var.kinds, "certificate")
  # Every (application, region) pair: applications read every region's vault so that
  # they can follow a failover without a role change in the middle of an incident.
  app_reads = {
    for combo in setproduct(var.application_principal_ids, var.regions) :
    "${combo[0]}/${combo[1]}" => { principal_id = combo[0], region = combo[1] }
  }
  tags = merge({ "managed-by" = "kvdr-deploy" }, var.tags)
}

data "azurerm_client_config" "current" {}

data "azurerm_resource_group" "kvdr" {
  name = var.resource_group_name
}

resource "azurerm_log_analytics_workspace" "audit" {
  name                = "${var.name_prefix}-kvdr-audit"
  location            = local.home_region
  resource_group_name = data.azurerm_resource_group.kvdr.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# The daemon's identity: user-assigned, so it survives a redeploy of the compute and
# one identity serves every replica of the daemon.
resource "azurerm_user_assigned_identity" "daemon" {
  name                = "${var.name_prefix}-kvdr-daemon"
  location            = local.home_region
  resource_group_name = data.azurerm_resource_group.kvdr.name
  tags                = local.tags
}

# AKS workload identity: the daemon's Kubernetes service account exchanges its token for
# this identity's (deploy/kubernetes/base/serviceaccount.yaml).
resource "azurerm_federated_identity_credential" "daemon_aks" {
  count               = var.workload_identity == null ? 0 : 1
  name                = "kvdr-daemon-aks"
  resource_group_name = data.azurerm_resource_group.kvdr.name
  parent_id           = azurerm_user_assigned_identity.daemon.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.workload_identity.oidc_issuer_url
  subject             = "system:serviceaccount:${var.workload_identity.namespace}:${var.workload_identity.service_account}"
}
