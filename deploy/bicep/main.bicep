// kvdr on Azure, the Bicep flavour of deploy/terraform/: the same resources under the
// same names (tests/deploy/test_iac_parity.py compares them), deployed into an existing
// resource group:
//   az deployment group create -g RG -f deploy/bicep/main.bicep -p @deploy/bicep/main.bicepparam
targetScope = 'resourceGroup'

@description('Prefix of every resource name (3-11 lowercase letters and digits; storage account names are 24 characters at most).')
@minLength(3)
@maxLength(11)
param namePrefix string

@description('Azure regions with one vault each; the first is where the storage, identity and workspace live.')
@minLength(2)
param regions array

@description('Region whose vault applications write to; the others mirror it.')
param primaryRegion string

@description('Name of the kvdr pair (blob paths and metric labels).')
param pairName string = 'app'

@description('Item kinds kvdr mirrors: secret, key, certificate. Keys and certificates add the crypto and certificate roles.')
param kinds array = [
  'secret'
]

@description('Key Vault tier of every vault: premium holds HSM-protected keys.')
@allowed([
  'standard'
  'premium'
])
param vaultSku string = 'premium'

@description('Soft-delete retention of the vaults (7-90 days).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionDays int = 90

@description('Allow the public endpoints (filtered by allowedIpRanges). Off by default: reach them through private endpoints.')
param publicNetworkAccess bool = false

@description('CIDR ranges allowed through the vault and storage firewalls when publicNetworkAccess is true.')
param allowedIpRanges array = []

@description('Subnet id per region for private endpoints of that region\'s vault (and, in the first region, of the storage account).')
param privateEndpointSubnetIds object = {}

@description('Redundancy of the backup account: RAGZRS (recommended) or GZRS.')
@allowed([
  'RAGZRS'
  'GZRS'
  'RAGRS'
])
param storageReplication string = 'RAGZRS'

// The SKU name spelled out, so that it is one literal per choice.
var storageSkus = {
  RAGZRS: 'Standard_RAGZRS'
  GZRS: 'Standard_GZRS'
  RAGRS: 'Standard_RAGRS'
}
var storageSku = storageSkus[storageReplication]

@description('Blob container for checkpoints, leases, the journal and snapshots.')
param storageContainer string = 'kvdr'

@description('Days a deleted or overwritten blob (and a deleted container) can be recovered.')
param blobSoftDeleteDays int = 14

@description('Days earlier blob versions are kept before a lifecycle rule deletes them.')
param blobVersionRetentionDays int = 30

@description('Time-based immutability (WORM) of the backup container, in days; 0 for none. Read docs/deploy.md first.')
param backupImmutabilityDays int = 0

@description('Two more regions for the three-store control record (issue 11); empty for one store.')
param controlRegions array = []

@description('Object ids of the applications\' identities: read access to secrets in every region\'s vault.')
param applicationPrincipalIds array = []

@description('HTTPS URL of the daemon\'s /events endpoint reachable by Event Grid; empty for no Event Grid delivery.')
param eventsEndpointUrl string = ''

@description('Shared secret Event Grid sends with every delivery (as a secret header); never an output.')
@secure()
param eventsSharedSecret string = ''

@description('Header that carries eventsSharedSecret.')
param eventsSecretHeader string = 'X-Kvdr-Events-Secret'

@description('Retention of the Log Analytics workspace that receives the vaults\' audit logs and metrics.')
param logRetentionDays int = 90

@description('AKS workload identity federation: {oidcIssuerUrl, namespace, serviceAccount}; empty when not on AKS.')
param workloadIdentity object = {}

@description('Create an Azure Chaos Studio experiment with the Key Vault Deny Access fault on the primary vault.')
param chaosExperiment bool = false

@description('ISO-8601 duration of the Deny Access fault.')
param drillDuration string = 'PT10M'

@description('Grant the daemon Key Vault Secrets Officer on the primary vault too: after a failover kvdr mirrors onto the former primary, and a drill\'s write load writes the active vault with the daemon\'s identity.')
param failoverRoles bool = true

@description('How kvdr fences a vault that is no longer active ([failover] fence): none, or azure-network-deny (grants the daemon Key Vault Contributor on each vault).')
@allowed([
  'none'
  'azure-network-deny'
])
param fence string = 'none'

@description('kvdr\'s fixed outbound addresses (a NAT gateway\'s or static public IPs) that a fenced vault still admits; required with fence = azure-network-deny.')
param fenceAllowIps array = []

@description('Tags on every resource.')
param tags object = {}

var homeRegion = regions[0]
var primaryIndex = indexOf(regions, primaryRegion)
var mirrorsKeys = contains(kinds, 'key')
var mirrorsCertificates = contains(kinds, 'certificate')
var allTags = union({ 'managed-by': 'kvdr-deploy' }, tags)
var withEvents = !empty(eventsEndpointUrl)
var secretEvents = [
  'Microsoft.KeyVault.SecretNewVersionCreated'
]
var keyEvents = mirrorsKeys ? [
  'Microsoft.KeyVault.KeyNewVersionCreated'
] : []
var certificateEvents = mirrorsCertificates ? [
  'Microsoft.KeyVault.CertificateNewVersionCreated'
] : []
var eventTypes = concat(secretEvents, keyEvents, certificateEvents)
var vaultIpRules = [for range in allowedIpRanges: {
  value: range
}]
var storageIpRules = [for range in allowedIpRanges: {
  value: range
  action: 'Allow'
}]
var controlStores = [for (region, i) in controlRegions: {
  name: '${namePrefix}kvdrctl${i + 1}'
  location: region
  sku: 'Standard_GZRS'
  container: 'kvdr-control'
}]
var storageAccounts = concat([
  {
    name: '${namePrefix}kvdrbackup'
    location: homeRegion
    sku: storageSku
    container: storageContainer
  }
], controlStores)
var appReadCount = length(applicationPrincipalIds) * length(regions)
// Built-in role definition ids (the same in every tenant).
var roleIds = {
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6'
  'Key Vault Secrets Officer': 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  'Key Vault Reader': '21090545-7ca7-4776-b22c-e363652d74d2'
  'Key Vault Crypto Officer': '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
  'Key Vault Certificates Officer': 'a4417e6f-fecd-4de8-b567-7b0420556985'
  'Key Vault Crypto Service Encryption User': 'e147488a-f6f5-4113-8e2d-b22465e65bf6'
  'Key Vault Crypto User': '12338af0-0e69-4776-bea7-57ae8d297424'
  'Key Vault Contributor': 'f25e0fa2-a7c8-4377-a976-54943a77a395'
  'Storage Blob Data Contributor': 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
}

resource audit 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-kvdr-audit'
  location: homeRegion
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

// The daemon's identity: user-assigned, so it survives a redeploy of the compute.
resource daemon 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-kvdr-daemon'
  location: homeRegion
  tags: allTags
}

// AKS workload identity (deploy/kubernetes/base/serviceaccount.yaml).
resource daemon_aks 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(workloadIdentity)) {
  parent: daemon
  name: 'kvdr-daemon-aks'
  properties: {
    audiences: [
      'api://AzureADTokenExchange'
    ]
    issuer: workloadIdentity.?oidcIssuerUrl ?? ''
    subject: 'system:serviceaccount:${workloadIdentity.?namespace ?? ''}:${workloadIdentity.?serviceAccount ?? ''}'
  }
}

// One vault per region; purge protection on, so a mass deletion stays recoverable.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = [
  for region in regions: {
    name: take('${namePrefix}-${region}', 24)
    location: region
    tags: allTags
    properties: {
      tenantId: subscription().tenantId
      sku: {
        family: 'A'
        name: vaultSku
      }
      enableSoftDelete: true
      softDeleteRetentionInDays: softDeleteRetentionDays
      enablePurgeProtection: true
      enableRbacAuthorization: true
      publicNetworkAccess: publicNetworkAccess ? 'Enabled' : 'Disabled'
      networkAcls: {
        defaultAction: 'Deny'
        bypass: 'AzureServices'
        ipRules: vaultIpRules
      }
    }
  }
]

// Audit logs (every data-plane call, kvdr's included) and metrics of every vault.
resource vault_audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for (region, i) in regions: {
    name: 'kvdr-audit'
    scope: vault[i]
    properties: {
      workspaceId: audit.id
      logs: [
        {
          categoryGroup: 'audit'
          enabled: true
        }
      ]
      metrics: [
        {
          category: 'AllMetrics'
          enabled: true
        }
      ]
    }
  }
]

// Backup and control storage. The backup account is RA-GZRS: readable in the paired
// region while home is down. With controlRegions, two more accounts hold the three-store
// control record (issue 11).
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = [
  for account in storageAccounts: {
    name: account.name
    location: account.location
    tags: allTags
    kind: 'StorageV2'
    sku: {
      name: account.sku
    }
    properties: {
      minimumTlsVersion: 'TLS1_2'
      supportsHttpsTrafficOnly: true
      allowSharedKeyAccess: false
      defaultToOAuthAuthentication: true
      allowBlobPublicAccess: false
      publicNetworkAccess: publicNetworkAccess ? 'Enabled' : 'Disabled'
      isLocalUserEnabled: false
      encryption: {
        requireInfrastructureEncryption: true
        keySource: 'Microsoft.Storage'
        services: {
          blob: {
            enabled: true
          }
        }
      }
      networkAcls: {
        defaultAction: 'Deny'
        bypass: 'AzureServices'
        ipRules: storageIpRules
      }
      sasPolicy: {
        sasExpirationPeriod: '0.01:00:00'
        expirationAction: 'Log'
      }
    }
  }
]

// Terraform's blob_properties block: versioning and soft delete.
resource storage_blob_service 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = [
  for (account, i) in storageAccounts: {
    parent: storage[i]
    name: 'default'
    properties: {
      isVersioningEnabled: true
      deleteRetentionPolicy: {
        enabled: true
        days: blobSoftDeleteDays
      }
      containerDeleteRetentionPolicy: {
        enabled: true
        days: blobSoftDeleteDays
      }
    }
  }
]

resource storage_container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for (account, i) in storageAccounts: {
    parent: storage_blob_service[i]
    name: account.container
    properties: {
      publicAccess: 'None'
    }
  }
]

// The backup account is storageAccounts[0].
resource backup_worm 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (backupImmutabilityDays > 0) {
  parent: storage_container[0]
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: backupImmutabilityDays
    allowProtectedAppendWrites: false
  }
}

// Versioning keeps what kvdr's retention deletes; this rule makes deletions final later.
resource storage_versions 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = [
  for (account, i) in storageAccounts: {
    parent: storage[i]
    name: 'default'
    properties: {
      policy: {
        rules: [
          {
            name: 'expire-old-versions'
            enabled: true
            type: 'Lifecycle'
            definition: {
              filters: {
                blobTypes: [
                  'blockBlob'
                ]
              }
              actions: {
                version: {
                  delete: {
                    daysAfterCreationGreaterThan: blobVersionRetentionDays
                  }
                }
              }
            }
          }
        ]
      }
    }
  }
]

// Who read, wrote or deleted which blob: the storage side of the audit trail.
resource storage_blob_audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for (account, i) in storageAccounts: {
    name: 'kvdr-blob-audit'
    scope: storage_blob_service[i]
    properties: {
      workspaceId: audit.id
      logs: [
        {
          category: 'StorageRead'
          enabled: true
        }
        {
          category: 'StorageWrite'
          enabled: true
        }
        {
          category: 'StorageDelete'
          enabled: true
        }
      ]
    }
  }
]

// Private endpoints: every vault and storage account in a region that has a subnet in
// privateEndpointSubnetIds (with public network access off, the only way in).
resource vault_pe 'Microsoft.Network/privateEndpoints@2023-11-01' = [
  for (region, i) in regions: if (contains(privateEndpointSubnetIds, region)) {
    name: '${take('${namePrefix}-${region}', 24)}-pe'
    location: region
    tags: allTags
    properties: {
      subnet: {
        id: privateEndpointSubnetIds[?region] ?? ''
      }
      privateLinkServiceConnections: [
        {
          name: '${take('${namePrefix}-${region}', 24)}-vault'
          properties: {
            privateLinkServiceId: vault[i].id
            groupIds: [
              'vault'
            ]
          }
        }
      ]
    }
  }
]

resource storage_pe 'Microsoft.Network/privateEndpoints@2023-11-01' = [
  for (account, i) in storageAccounts: if (contains(privateEndpointSubnetIds, account.location)) {
    name: '${account.name}-pe'
    location: account.location
    tags: allTags
    properties: {
      subnet: {
        id: privateEndpointSubnetIds[?account.location] ?? ''
      }
      privateLinkServiceConnections: [
        {
          name: '${account.name}-blob'
          properties: {
            privateLinkServiceId: storage[i].id
            groupIds: [
              'blob'
            ]
          }
        }
      ]
    }
  }
]

// -- least privilege: each assignment says which kvdr operation needs it --------------

// Change feed and mirror: list secrets and versions, get each version's value.
resource daemon_secrets_user_primary 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault[primaryIndex].id, daemon.id, 'Key Vault Secrets User')
  scope: vault[primaryIndex]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Secrets User'])
    principalId: daemon.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Deletion sweep: list the primary's deleted secrets, keys and certificates (metadata only).
resource daemon_reader_primary 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault[primaryIndex].id, daemon.id, 'Key Vault Reader')
  scope: vault[primaryIndex]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Reader'])
    principalId: daemon.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Mirror: set_secret, update attributes, delete, recover a soft-deleted target item.
resource daemon_secrets_officer_secondary 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (region, i) in regions: if (region != primaryRegion) {
    name: guid(vault[i].id, daemon.id, 'Key Vault Secrets Officer')
    scope: vault[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Secrets Officer'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Failover: once another region is active, the former primary is a target of the pair;
// a drill's write load writes the active vault with this identity too.
resource daemon_secrets_officer_primary 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (failoverRoles) {
  name: guid(vault[primaryIndex].id, daemon.id, 'Key Vault Secrets Officer')
  scope: vault[primaryIndex]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Secrets Officer'])
    principalId: daemon.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Keys: backup on the primary; restore, delete, recover and the one allowed purge of
// kvdr's own superseded copy on the secondaries.
resource daemon_crypto_officer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (region, i) in regions: if (mirrorsKeys) {
    name: guid(vault[i].id, daemon.id, 'Key Vault Crypto Officer')
    scope: vault[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Crypto Officer'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Certificates: backup on the primary, restore and import on the secondaries.
resource daemon_certificates_officer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (region, i) in regions: if (mirrorsCertificates) {
    name: guid(vault[i].id, daemon.id, 'Key Vault Certificates Officer')
    scope: vault[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Certificates Officer'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Backups: wrapKey/unwrapKey with each region's `kvdr-backup` key-encryption key.
resource daemon_kek_user 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (region, i) in regions: {
    name: guid(vault[i].id, daemon.id, 'Key Vault Crypto Service Encryption User')
    scope: vault[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Crypto Service Encryption User'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Backups: sign (and verify) with each region's `kvdr-backup-signing` key, so every
// segment, snapshot and journal head proves kvdr wrote it ([[backups.signers]]).
resource daemon_signer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (region, i) in regions: {
    name: guid(vault[i].id, daemon.id, 'Key Vault Crypto User')
    scope: vault[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Crypto User'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Checkpoints, pair leases, journal segments, snapshots and retention deletes (the backup
// container), and the control record's compare-and-swap writes (the control containers,
// issue 11); scoped to each container, not the account.
resource daemon_blob_contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (account, i) in storageAccounts: {
    name: guid(storage_container[i].id, daemon.id, 'Storage Blob Data Contributor')
    scope: storage_container[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Storage Blob Data Contributor'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Applications read secrets in every region, so a failover needs no role change.
resource app_secrets_user 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for n in range(0, appReadCount): {
    name: guid(vault[n % length(regions)].id, applicationPrincipalIds[n / length(regions)], 'Key Vault Secrets User')
    scope: vault[n % length(regions)]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Secrets User'])
      principalId: applicationPrincipalIds[n / length(regions)]
    }
  }
]

// -- Event Grid: NewVersionCreated events of the primary vault to the daemon's /events --

resource primary_vault_events 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' = if (withEvents) {
  name: '${take('${namePrefix}-${primaryRegion}', 24)}-events'
  location: primaryRegion
  tags: allTags
  properties: {
    source: vault[primaryIndex].id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource daemon_events 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = if (withEvents) {
  parent: primary_vault_events
  name: 'kvdr-daemon'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: eventsEndpointUrl
        maxEventsPerBatch: 100
        preferredBatchSizeInKilobytes: 64
        // The daemon's shared secret as a secret delivery header (issue 9 checks it).
        deliveryAttributeMappings: empty(eventsSharedSecret) ? [] : [
          {
            name: eventsSecretHeader
            type: 'Static'
            properties: {
              value: eventsSharedSecret
              isSecret: true
            }
          }
        ]
      }
    }
    filter: {
      includedEventTypes: eventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

// -- optional: Chaos Studio's Key Vault Deny Access fault on the primary vault ----------

resource chaos_target 'Microsoft.Chaos/targets@2024-01-22' = if (chaosExperiment) {
  name: 'Microsoft-KeyVault'
  scope: vault[primaryIndex]
  properties: {}
}

resource chaos_deny_access 'Microsoft.Chaos/targets/capabilities@2024-01-22' = if (chaosExperiment) {
  parent: chaos_target
  name: 'DenyAccess-1.0'
}

resource chaos_deny_primary 'Microsoft.Chaos/experiments@2024-01-22' = if (chaosExperiment) {
  name: '${namePrefix}-kvdr-deny-primary'
  location: primaryRegion
  tags: allTags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    selectors: [
      {
        type: 'List'
        id: 'primary-vault'
        targets: [
          {
            type: 'ChaosTarget'
            id: chaos_target.id
          }
        ]
      }
    ]
    steps: [
      {
        name: 'deny-primary'
        branches: [
          {
            name: 'deny-primary'
            actions: [
              {
                type: 'continuous'
                name: chaos_deny_access.properties.urn
                selectorId: 'primary-vault'
                duration: drillDuration
                parameters: []
              }
            ]
          }
        ]
      }
    ]
  }
}

// Fencing (failover switchover, promote, failback): read the vault and rewrite its
// networkAcls so only kvdr's fenceAllowIps reach it (Microsoft.KeyVault/vaults/read and
// write); only with the network fence, because vaults/write could also change the
// vault's other properties (the audit logs record every such write).
resource daemon_fence_contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (region, i) in regions: if (fence == 'azure-network-deny') {
    name: guid(vault[i].id, daemon.id, 'Key Vault Contributor')
    scope: vault[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Contributor'])
      principalId: daemon.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Deny Access rewrites this one vault's network configuration for the fault's duration.
resource chaos_vault_contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (chaosExperiment) {
  name: guid(vault[primaryIndex].id, 'chaos-deny-primary', 'Key Vault Contributor')
  scope: vault[primaryIndex]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['Key Vault Contributor'])
    principalId: chaos_deny_primary.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// -- outputs: everything kvdr's configuration needs, nothing secret ----------------------
// az deployment group show -g RG -n main --query properties.outputs \
//   | python deploy/render_config.py - > kvdr.toml

output kvdr_credential object = {
  kind: 'managed-identity'
  client_id: daemon.properties.clientId
}

output kvdr_regions array = [
  for (region, i) in regions: {
    region: region
    vault_url: vault[i].properties.vaultUri
    sku: vaultSku
    resource_id: vault[i].id
  }
]

output kvdr_storage object = {
  account_url: storage[0].properties.primaryEndpoints.blob
  secondary_account_url: startsWith(storageReplication, 'RA') ? storage[0].properties.secondaryEndpoints.blob : null
  container: storage_container[0].name
}

output kvdr_pair object = {
  name: pairName
  primary: primaryRegion
  kinds: kinds
}

output kvdr_backup_keks array = [for region in regions: { region: region, key: 'kvdr-backup' }]

output kvdr_control_stores array = [
  for (region, i) in controlRegions: {
    region: region
    account_url: storage[i + 1].properties.primaryEndpoints.blob
    container: storage_container[i + 1].name
  }
]

output kvdr_fence object = {
  action: fence
  allow_ips: fenceAllowIps
}

output daemon_principal_id string = daemon.properties.principalId

output log_analytics_workspace_id string = audit.id
