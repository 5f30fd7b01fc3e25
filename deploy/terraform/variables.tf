variable "name_prefix" {
  description = "Prefix of every resource name (3-11 lowercase letters and digits; storage account names are 24 characters at most)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,10}$", var.name_prefix))
    error_message = "name_prefix must be 3-11 lowercase letters and digits, starting with a letter."
  }
}

variable "resource_group_name" {
  description = "Existing resource group that holds everything."
  type        = string
}

variable "regions" {
  description = "Azure regions with one vault each; the first is where the storage, identity and workspace live."
  type        = list(string)
  validation {
    condition     = length(var.regions) >= 2 && length(distinct(var.regions)) == length(var.regions)
    error_message = "At least two distinct regions: kvdr mirrors a primary vault into secondaries."
  }
}

variable "primary_region" {
  description = "Region whose vault applications write to; the others mirror it."
  type        = string
}

variable "pair_name" {
  description = "Name of the kvdr pair (blob paths and metric labels)."
  type        = string
  default     = "app"
}

variable "kinds" {
  description = "Item kinds kvdr mirrors: secret, key, certificate. Keys and certificates add the crypto and certificate roles."
  type        = list(string)
  default     = ["secret"]
  validation {
    condition     = length(var.kinds) > 0 && alltrue([for k in var.kinds : contains(["secret", "key", "certificate"], k)])
    error_message = "kinds holds secret, key and/or certificate."
  }
}

variable "vault_sku" {
  description = "Key Vault tier of every vault: premium holds HSM-protected keys (kvdr mirrors an HSM key only into a premium vault)."
  type        = string
  default     = "premium"
  validation {
    condition     = contains(["standard", "premium"], var.vault_sku)
    error_message = "vault_sku is standard or premium."
  }
}

variable "soft_delete_retention_days" {
  description = "Soft-delete retention of the vaults (7-90 days); a deleted item can be recovered for this long."
  type        = number
  default     = 90
}

variable "public_network_access" {
  description = "Allow the vaults' and storage accounts' public endpoints (filtered by allowed_ip_ranges). Off by default: reach them through private endpoints."
  type        = bool
  default     = false
}

variable "allowed_ip_ranges" {
  description = "CIDR ranges allowed through the vault and storage firewalls when public_network_access is true."
  type        = list(string)
  default     = []
}

variable "private_endpoint_subnet_ids" {
  description = "Subnet id per region for private endpoints of that region's vault (and, in the first region, of the storage account). Empty: no private endpoints."
  type        = map(string)
  default     = {}
}

variable "storage_replication" {
  description = "Redundancy of the backup and control account: RAGZRS (recommended: kvdr reads its secondary endpoint while the primary region is down) or GZRS."
  type        = string
  default     = "RAGZRS"
  validation {
    condition     = contains(["RAGZRS", "GZRS", "RAGRS"], var.storage_replication)
    error_message = "storage_replication is RAGZRS, GZRS or RAGRS."
  }
}

variable "storage_container" {
  description = "Blob container for checkpoints, leases, the journal and snapshots."
  type        = string
  default     = "kvdr"
}

variable "blob_soft_delete_days" {
  description = "Days a deleted or overwritten blob (and a deleted container) can be recovered."
  type        = number
  default     = 14
}

variable "blob_version_retention_days" {
  description = "Days earlier blob versions are kept before a lifecycle rule deletes them; kvdr's own retention takes effect after this long."
  type        = number
  default     = 30
}

variable "backup_immutability_days" {
  description = "Time-based immutability (WORM) of the backup container, in days; 0 for none. See docs/deploy.md before turning it on: kvdr rewrites the journal head and its retention deletes objects, which a WORM period refuses."
  type        = number
  default     = 0
}

variable "control_regions" {
  description = "Two more regions for the three-store control record (issue 11); empty for one store. Each gets a small storage account."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.control_regions) == 0 || length(var.control_regions) == 2
    error_message = "control_regions is empty or names exactly two regions (three stores with the main account)."
  }
}

variable "application_principal_ids" {
  description = "Object ids of the applications' identities: each gets read access to the secrets in every region's vault so it can follow a failover."
  type        = list(string)
  default     = []
}

variable "events_endpoint_url" {
  description = "HTTPS URL of the daemon's /events endpoint reachable by Event Grid; null for no Event Grid delivery (polling alone still finds every change)."
  type        = string
  default     = null
}

variable "events_shared_secret" {
  description = "Shared secret Event Grid sends with every delivery (as a secret header); never an output."
  type        = string
  default     = null
  sensitive   = true
}

variable "events_secret_header" {
  description = "Header that carries events_shared_secret."
  type        = string
  default     = "X-Kvdr-Events-Secret"
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace that receives the vaults' audit logs and metrics."
  type        = number
  default     = 90
}

variable "workload_identity" {
  description = "AKS workload identity federation for the daemon: the cluster's OIDC issuer URL, namespace and service account. null when not on AKS."
  type = object({
    oidc_issuer_url = string
    namespace       = string
    service_account = string
  })
  default = null
}

variable "chaos_experiment" {
  description = "Create an Azure Chaos Studio experiment that applies the Key Vault Deny Access fault to the primary vault for drill_duration."
  type        = bool
  default     = false
}

variable "drill_duration" {
  description = "ISO-8601 duration of the Deny Access fault in the Chaos Studio experiment."
  type        = string
  default     = "PT10M"
}

variable "failover_roles" {
  description = "Grant the daemon Key Vault Secrets Officer on the primary vault too: after a promotion or switchover kvdr mirrors the new active region onto the former primary (docs/failover.md), and a drill's write load writes the active vault with the daemon's identity. false keeps the primary read-only to kvdr; a failover then needs the role granted by hand."
  type        = bool
  default     = true
}

variable "fence" {
  description = "How kvdr fences a vault that is no longer active ([failover] fence): none, or azure-network-deny (the vault's firewall denies every address but fence_allow_ips, through its management plane; grants the daemon Key Vault Contributor on each vault)."
  type        = string
  default     = "none"
  validation {
    condition     = contains(["none", "azure-network-deny"], var.fence)
    error_message = "fence must be \"none\" or \"azure-network-deny\"."
  }
}

variable "fence_allow_ips" {
  description = "kvdr's fixed outbound addresses (a NAT gateway's or static public IPs, not CIDR ranges wider than /32) that a fenced vault still admits ([failover] fence_allow_ips); required with fence = azure-network-deny."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
