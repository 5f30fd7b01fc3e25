# Least privilege: each role assignment says which kvdr operation needs it. Names match
# the Bicep symbols one to one (tests/deploy/test_iac_parity.py compares them).

# -- the primary vault: kvdr only reads it ------------------------------------------

# Change feed and mirror: list secrets and versions, get each version's value.
resource "azurerm_role_assignment" "daemon_secrets_user_primary" {
  scope                = azurerm_key_vault.vault[var.primary_region].id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# Deletion sweep: list the primary's deleted secrets, keys and certificates (metadata only).
resource "azurerm_role_assignment" "daemon_reader_primary" {
  scope                = azurerm_key_vault.vault[var.primary_region].id
  role_definition_name = "Key Vault Reader"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# -- the secondaries: kvdr writes its mirror copies ---------------------------------

# Mirror: set_secret, update attributes, delete, recover a soft-deleted target item.
resource "azurerm_role_assignment" "daemon_secrets_officer_secondary" {
  for_each             = toset(local.secondaries)
  scope                = azurerm_key_vault.vault[each.key].id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# Failover: once another region is active, the former primary is a target of the pair
# (set_secret, delete, recover of its copies); a drill's write load, which writes the
# active vault as an application would, runs with this identity too.
resource "azurerm_role_assignment" "daemon_secrets_officer_primary" {
  count                = var.failover_roles ? 1 : 0
  scope                = azurerm_key_vault.vault[var.primary_region].id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# Keys (only when the pair mirrors them): backup on the primary; restore, delete, recover
# and the one allowed purge of kvdr's own superseded copy on the secondaries.
resource "azurerm_role_assignment" "daemon_crypto_officer" {
  for_each             = local.mirrors_keys ? toset(var.regions) : toset([])
  scope                = azurerm_key_vault.vault[each.key].id
  role_definition_name = "Key Vault Crypto Officer"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# Certificates (only when the pair mirrors them): backup on the primary, restore and
# import on the secondaries.
resource "azurerm_role_assignment" "daemon_certificates_officer" {
  for_each             = local.mirrors_certificates ? toset(var.regions) : toset([])
  scope                = azurerm_key_vault.vault[each.key].id
  role_definition_name = "Key Vault Certificates Officer"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# -- every vault: the backup key-encryption key -------------------------------------

# Backups: wrapKey/unwrapKey with each region's `kvdr-backup` key (envelope encryption;
# one KEK per region so losing a region never locks the backups).
resource "azurerm_role_assignment" "daemon_kek_user" {
  for_each             = toset(var.regions)
  scope                = azurerm_key_vault.vault[each.key].id
  role_definition_name = "Key Vault Crypto Service Encryption User"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# Backups: sign (and verify) with each region's `kvdr-backup-signing` key, so every
# segment, snapshot and journal head proves kvdr wrote it ([[backups.signers]]).
resource "azurerm_role_assignment" "daemon_signer" {
  for_each             = toset(var.regions)
  scope                = azurerm_key_vault.vault[each.key].id
  role_definition_name = "Key Vault Crypto User"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# -- every vault, with fence = "azure-network-deny" ----------------------------------

# Fencing (failover switchover, promote, failback): read the vault (Vaults_Get) and
# rewrite its networkAcls (Vaults_Update) so only kvdr's fence_allow_ips reach it. The
# built-in role with Microsoft.KeyVault/vaults/read and write; granted only when the
# network fence is chosen, because vaults/write could also change the vault's other
# properties (the audit logs record every such write).
resource "azurerm_role_assignment" "daemon_fence_contributor" {
  for_each             = var.fence == "azure-network-deny" ? toset(var.regions) : toset([])
  scope                = azurerm_key_vault.vault[each.key].id
  role_definition_name = "Key Vault Contributor"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# -- storage ----------------------------------------------------------------------------

# Checkpoints, pair leases, journal segments, snapshots and retention deletes (the backup
# container), and the control record's compare-and-swap writes (the control containers,
# issue 11); scoped to each container, not the account.
resource "azurerm_role_assignment" "daemon_blob_contributor" {
  for_each             = local.storage_accounts
  scope                = azurerm_storage_container.storage_container[each.key].id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.daemon.principal_id
  principal_type       = "ServicePrincipal"
}

# -- applications -----------------------------------------------------------------------

# Applications read secrets in every region, so a failover needs no role change.
resource "azurerm_role_assignment" "app_secrets_user" {
  for_each             = local.app_reads
  scope                = azurerm_key_vault.vault[each.value.region].id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = each.value.principal_id
}
