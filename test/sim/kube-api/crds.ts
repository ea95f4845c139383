/**
 * CustomResourceDefinitions the simulation can pre-install: Velero's Backup, Restore and
 * BackupStorageLocation, and the system-upgrade-controller's Plan. Condensed schemas written for
 * this simulation (no descriptions, no printer columns) that keep the upstream field names,
 * types, `required` lists and enums, and upstream's subresource choices: Plan has a status
 * subresource; Velero's CRDs have none, so Velero writes status through the main resource.
 * Upstream's Plan schema has no minimum on `concurrency`: the controller, not the apiserver,
 * refuses 0.
 */
import type {Dict, KubeObject} from './types.js'

const str = (extra: Dict = {}): Dict => ({type: 'string', ...extra})
const int = (extra: Dict = {}): Dict => ({type: 'integer', ...extra})
const bool = (extra: Dict = {}): Dict => ({type: 'boolean', ...extra})
const arr = (items: Dict, extra: Dict = {}): Dict => ({type: 'array', items, ...extra})
const obj = (properties: Dict, required?: string[], extra: Dict = {}): Dict => ({type: 'object', properties, ...(required ? {required} : {}), ...extra})
const stringMap = (extra: Dict = {}): Dict => ({type: 'object', additionalProperties: str(), ...extra})
const dateTime = (): Dict => str({format: 'date-time', nullable: true})
const anything = (): Dict => ({type: 'object', 'x-kubernetes-preserve-unknown-fields': true})

const labelSelector = (): Dict =>
  obj(
    {
      matchExpressions: arr(obj({key: str(), operator: str(), values: arr(str())}, ['key', 'operator'])),
      matchLabels: stringMap(),
    },
    undefined,
    {nullable: true},
  )

function crd(group: string, kind: string, plural: string, scope: 'Namespaced' | 'Cluster', schema: Dict, opts: {statusSubresource: boolean; shortNames?: string[]}): KubeObject {
  const version: Dict = {name: 'v1', served: true, storage: true, schema: {openAPIV3Schema: schema}}
  if (opts.statusSubresource) version.subresources = {status: {}}
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {name: `${plural}.${group}`},
    spec: {
      group,
      names: {kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), ...(opts.shortNames ? {shortNames: opts.shortNames} : {})},
      scope,
      versions: [version],
    },
  }
}

const root = (spec: Dict, status: Dict, required?: string[]): Dict =>
  obj({apiVersion: str(), kind: str(), metadata: {type: 'object'}, spec, status}, required)

// ------------------------------------------------------------------ Velero

const backupPhases = ['New', 'FailedValidation', 'InProgress', 'WaitingForPluginOperations', 'WaitingForPluginOperationsPartiallyFailed', 'Finalizing', 'FinalizingPartiallyFailed', 'Completed', 'PartiallyFailed', 'Failed', 'Deleting']
const restorePhases = ['New', 'FailedValidation', 'InProgress', 'WaitingForPluginOperations', 'WaitingForPluginOperationsPartiallyFailed', 'Finalizing', 'FinalizingPartiallyFailed', 'Completed', 'PartiallyFailed', 'Failed']
const names = (): Dict => arr(str(), {nullable: true})

export const veleroBackupCrd = (): KubeObject =>
  crd(
    'velero.io',
    'Backup',
    'backups',
    'Namespaced',
    root(
      obj({
        includedNamespaces: names(),
        excludedNamespaces: names(),
        includedResources: names(),
        excludedResources: names(),
        includeClusterResources: bool({nullable: true}),
        labelSelector: labelSelector(),
        orLabelSelectors: arr(labelSelector(), {nullable: true}),
        snapshotVolumes: bool({nullable: true}),
        snapshotMoveData: bool({nullable: true}),
        defaultVolumesToFsBackup: bool({nullable: true}),
        storageLocation: str(),
        volumeSnapshotLocations: arr(str()),
        ttl: str(),
        csiSnapshotTimeout: str(),
        itemOperationTimeout: str(),
        orderedResources: stringMap({nullable: true}),
        metadata: obj({labels: stringMap()}),
        hooks: anything(),
        resourcePolicy: anything(),
        uploaderConfig: anything(),
        datamover: str(),
      }),
      obj({
        phase: str({enum: backupPhases}),
        startTimestamp: dateTime(),
        completionTimestamp: dateTime(),
        expiration: dateTime(),
        errors: int(),
        warnings: int(),
        failureReason: str(),
        validationErrors: names(),
        formatVersion: str(),
        version: int(),
        progress: obj({totalItems: int(), itemsBackedUp: int()}, undefined, {nullable: true}),
        volumeSnapshotsAttempted: int(),
        volumeSnapshotsCompleted: int(),
      }),
    ),
    {statusSubresource: false},
  )

export const veleroRestoreCrd = (): KubeObject =>
  crd(
    'velero.io',
    'Restore',
    'restores',
    'Namespaced',
    root(
      obj({
        backupName: str(),
        scheduleName: str(),
        includedNamespaces: names(),
        excludedNamespaces: names(),
        includedResources: names(),
        excludedResources: names(),
        includeClusterResources: bool({nullable: true}),
        namespaceMapping: stringMap(),
        labelSelector: labelSelector(),
        restorePVs: bool({nullable: true}),
        preserveNodePorts: bool({nullable: true}),
        existingResourcePolicy: str(),
        itemOperationTimeout: str(),
        hooks: anything(),
        resourceModifier: anything(),
        uploaderConfig: anything(),
      }),
      obj({
        phase: str({enum: restorePhases}),
        startTimestamp: dateTime(),
        completionTimestamp: dateTime(),
        errors: int(),
        warnings: int(),
        failureReason: str(),
        validationErrors: names(),
        progress: obj({totalItems: int(), itemsRestored: int()}, undefined, {nullable: true}),
      }),
    ),
    {statusSubresource: false},
  )

export const veleroBackupStorageLocationCrd = (): KubeObject =>
  crd(
    'velero.io',
    'BackupStorageLocation',
    'backupstoragelocations',
    'Namespaced',
    root(
      obj(
        {
          provider: str(),
          objectStorage: obj({bucket: str(), prefix: str(), caCert: str({format: 'byte'})}, ['bucket']),
          config: stringMap(),
          credential: obj({name: str(), key: str(), optional: bool()}, ['key']),
          default: bool(),
          accessMode: str({enum: ['ReadOnly', 'ReadWrite']}),
          backupSyncPeriod: str({nullable: true}),
          validationFrequency: str({nullable: true}),
        },
        ['objectStorage', 'provider'],
      ),
      obj({
        phase: str({enum: ['Available', 'Unavailable']}),
        message: str(),
        lastValidationTime: dateTime(),
        lastSyncedTime: dateTime(),
        accessMode: str({enum: ['ReadOnly', 'ReadWrite']}),
      }),
    ),
    {statusSubresource: false, shortNames: ['bsl']},
  )

export const veleroCrds = (): KubeObject[] => [veleroBackupCrd(), veleroRestoreCrd(), veleroBackupStorageLocationCrd()]

// ------------------------------------------------------------------ system-upgrade-controller

const container = (): Dict =>
  obj(
    {
      image: str(),
      command: arr(str()),
      args: arr(str()),
      envs: arr(obj({name: str(), value: str(), valueFrom: anything()}, ['name'])),
      envFrom: arr(
        obj({
          configMapRef: obj({name: str(), optional: bool()}),
          secretRef: obj({name: str(), optional: bool()}),
          prefix: str(),
        }),
      ),
      volumes: arr(obj({name: str(), source: str(), destination: str()}, ['destination', 'name', 'source'])),
      securityContext: anything(),
    },
    ['image'],
  )

const weekdays = ['0', 'su', 'sun', 'sunday', '1', 'mo', 'mon', 'monday', '2', 'tu', 'tue', 'tuesday', '3', 'we', 'wed', 'wednesday', '4', 'th', 'thu', 'thursday', '5', 'fr', 'fri', 'friday', '6', 'sa', 'sat', 'saturday']

export const sucPlanCrd = (): KubeObject =>
  crd(
    'upgrade.cattle.io',
    'Plan',
    'plans',
    'Namespaced',
    root(
      obj(
        {
          concurrency: int({format: 'int64'}),
          nodeSelector: labelSelector(),
          serviceAccountName: str(),
          channel: str(),
          version: str(),
          secrets: arr(obj({name: str(), path: str(), ignoreUpdates: bool()})),
          tolerations: arr(obj({key: str(), operator: str(), value: str(), effect: str(), tolerationSeconds: int({format: 'int64'})})),
          exclusive: bool(),
          window: obj({days: arr(str({enum: weekdays}), {minItems: 1}), startTime: str(), endTime: str(), timeZone: str()}),
          prepare: container(),
          upgrade: container(),
          cordon: bool(),
          drain: obj({
            timeout: {'x-kubernetes-int-or-string': true, anyOf: [{type: 'integer'}, {type: 'string'}]},
            gracePeriod: int({format: 'int32'}),
            deleteLocalData: bool(),
            deleteEmptydirData: bool(),
            ignoreDaemonSets: bool(),
            force: bool(),
            disableEviction: bool(),
            skipWaitForDeleteTimeout: int(),
            podSelector: labelSelector(),
          }),
          imagePullSecrets: arr(obj({name: str({default: ''})})),
          postCompleteDelay: str(),
          postCompleteLabels: stringMap(),
          jobActiveDeadlineSecs: int({format: 'int64'}),
          priorityClassName: str(),
        },
        ['upgrade'],
      ),
      obj({
        conditions: arr(
          obj({type: str(), status: str(), reason: str(), message: str(), lastUpdateTime: str(), lastTransitionTime: str()}, ['status', 'type']),
          {'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type']},
        ),
        latestVersion: str(),
        latestHash: str(),
        applying: arr(str()),
      }),
    ),
    {statusSubresource: true},
  )
