# Event Grid: NewVersionCreated events of the primary vault pushed to the daemon's
# /events, for second-level latency. Polling finds every change without it.
resource "azurerm_eventgrid_system_topic" "primary_vault_events" {
  count               = var.events_endpoint_url == null ? 0 : 1
  name                = "${local.vault_names[var.primary_region]}-events"
  location            = var.primary_region
  resource_group_name = data.azurerm_resource_group.kvdr.name
  source_resource_id  = azurerm_key_vault.vault[var.primary_region].id
  topic_type          = "Microsoft.KeyVault.vaults"
  tags                = local.tags
}

resource "azurerm_eventgrid_system_topic_event_subscription" "daemon_events" {
  count               = var.events_endpoint_url == null ? 0 : 1
  name                = "kvdr-daemon"
  system_topic        = azurerm_eventgrid_system_topic.primary_vault_events[0].name
  resource_group_name = data.azurerm_resource_group.kvdr.name
  included_event_types = concat(
    ["Microsoft.KeyVault.SecretNewVersionCreated"],
    local.mirrors_keys ? ["Microsoft.KeyVault.KeyNewVersionCreated"] : [],
    local.mirrors_certificates ? ["Microsoft.KeyVault.CertificateNewVersionCreated"] : [],
  )
  webhook_endpoint {
    url                               = var.events_endpoint_url
    max_events_per_batch              = 100
    preferred_batch_size_in_kilobytes = 64
  }
  # The daemon's shared secret travels as a secret delivery header (Event Grid never
  # shows it back); checking it is issue 9's webhook work in the daemon.
  dynamic "delivery_property" {
    for_each = var.events_shared_secret == null ? [] : [1]
    content {
      header_name = var.events_secret_header
      type        = "Static"
      value       = var.events_shared_secret
      secret      = true
    }
  }
  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }
}
