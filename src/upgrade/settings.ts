import type {HomelabConfig} from '../config/schema.js'
import type {DrainSettings} from '../kube/drain.js'
import type {VeleroSettings} from '../velero.js'

/** The cluster file's drain options as the drain code takes them (kubectl's units: seconds → ms). */
export function drainSettings(config: HomelabConfig): DrainSettings {
  const drain = config.upgrade.drain
  return {
    ignoreDaemonsets: drain.ignoreDaemonsets,
    deleteEmptydirData: drain.deleteEmptydirData,
    force: drain.force,
    gracePeriod: drain.gracePeriod,
    timeoutMs: drain.timeout,
    disableEviction: drain.disableEviction,
    skipWaitForDeleteTimeoutMs: drain.skipWaitForDeleteTimeout * 1000,
    podSelector: drain.podSelector,
  }
}

/** Go's duration form, as Velero's spec.ttl expects it: 720h0m0s. */
export function goDuration(ms: number): string {
  const seconds = Math.round(ms / 1000)
  return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m${seconds % 60}s`
}

export function veleroSettings(config: HomelabConfig): VeleroSettings {
  const velero = config.upgrade.backup.velero
  return {
    namespace: velero.namespace,
    includedNamespaces: velero.includedNamespaces,
    storageLocation: velero.storageLocation,
    ttl: goDuration(velero.ttl),
    timeoutMs: velero.timeout,
  }
}
