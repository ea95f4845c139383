import type {KubeClients} from './kube/client.js'
import {isNotFound} from './kube/api-errors.js'
import {waitFor} from './kube/wait.js'
import {HomelabError, PreflightError} from './errors.js'

const GROUP = 'velero.io'
const VERSION = 'v1'

export interface VeleroSettings {
  namespace: string
  includedNamespaces: string[]
  storageLocation: string
  ttl: string
  timeoutMs: number
}

interface VeleroObject {
  metadata?: {name?: string; namespace?: string}
  status?: {phase?: string; failureReason?: string; validationErrors?: string[]; errors?: number; warnings?: number}
}

export class BackupError extends HomelabError {}

/** A backup into an unavailable location fails later; say so before anything changes. */
export async function checkStorageLocation(kube: KubeClients, settings: VeleroSettings): Promise<void> {
  let location: VeleroObject
  try {
    location = (await kube.customObjects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: settings.namespace,
      plural: 'backupstoragelocations',
      name: settings.storageLocation,
    })) as VeleroObject
  } catch (error) {
    if (isNotFound(error)) {
      throw new PreflightError(`Velero BackupStorageLocation ${settings.namespace}/${settings.storageLocation} not found`, {
        cause: error,
        hint: 'install Velero with a backup location, set upgrade.backup.velero.storageLocation, or pass --skip-backup',
      })
    }
    throw error
  }
  if (location.status?.phase !== 'Available') {
    throw new PreflightError(`Velero BackupStorageLocation ${settings.storageLocation} is ${location.status?.phase ?? 'not reporting a phase'}, not Available`, {
      hint: 'fix the backup location (velero backup-location get) or pass --skip-backup',
    })
  }
}

const FINAL_FAILURES = new Set(['Failed', 'PartiallyFailed', 'FailedValidation'])

async function createAndWait(kube: KubeClients, settings: VeleroSettings, plural: 'backups' | 'restores', body: object, name: string, signal?: AbortSignal): Promise<void> {
  try {
    await kube.customObjects.createNamespacedCustomObject({group: GROUP, version: VERSION, namespace: settings.namespace, plural, body})
  } catch (error) {
    // Created by an earlier attempt of this same run (resume): follow that one.
    if ((error as {code?: number}).code !== 409) throw error
  }
  const kind = plural === 'backups' ? 'Backup' : 'Restore'
  const ended = await waitFor<VeleroObject, {phase: string; reason?: string}>({
    kube,
    path: `/apis/${GROUP}/${VERSION}/namespaces/${settings.namespace}/${plural}`,
    query: {fieldSelector: `metadata.name=${name}`},
    list: async () => {
      const list = (await kube.customObjects.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: settings.namespace,
        plural,
        fieldSelector: `metadata.name=${name}`,
      })) as {items: VeleroObject[]; metadata?: {resourceVersion?: string}}
      return list
    },
    check: (objects) => {
      const object = objects.get(`${settings.namespace}/${name}`)
      const current = object?.status?.phase
      const reason = object?.status?.failureReason
      return current === 'Completed' || (current && FINAL_FAILURES.has(current)) ? {phase: current, reason} : undefined
    },
    timeoutMs: settings.timeoutMs,
    description: `Velero ${kind} ${name} to complete`,
    hint: `check Velero (velero ${kind.toLowerCase()} describe ${name}); raise upgrade.backup.velero.timeout if it is just slow`,
    signal,
  })
  if (ended.phase !== 'Completed') {
    throw new BackupError(`Velero ${kind} ${name} ended ${ended.phase}${ended.reason ? ` (${ended.reason})` : ''}`, {
      hint: `see velero ${kind.toLowerCase()} describe ${name} --details; nothing on the nodes was changed by this step`,
    })
  }
}

export async function createBackup(kube: KubeClients, settings: VeleroSettings, name: string, signal?: AbortSignal): Promise<void> {
  await createAndWait(
    kube,
    settings,
    'backups',
    {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Backup',
      metadata: {name, namespace: settings.namespace, labels: {'app.kubernetes.io/managed-by': 'homelab'}},
      spec: {includedNamespaces: settings.includedNamespaces, storageLocation: settings.storageLocation, ttl: settings.ttl},
    },
    name,
    signal,
  )
}

export async function restoreBackup(kube: KubeClients, settings: VeleroSettings, backupName: string, restoreName: string, signal?: AbortSignal): Promise<void> {
  await createAndWait(
    kube,
    settings,
    'restores',
    {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Restore',
      metadata: {name: restoreName, namespace: settings.namespace, labels: {'app.kubernetes.io/managed-by': 'homelab'}},
      spec: {backupName, includedNamespaces: settings.includedNamespaces, existingResourcePolicy: 'update'},
    },
    restoreName,
    signal,
  )
}
