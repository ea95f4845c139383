/**
 * A simulated Velero server: it watches `velero.io/v1` Backup and Restore objects in its
 * namespace and moves them New → InProgress → Completed (or a failure asked for by the test),
 * and keeps a BackupStorageLocation `default` whose phase a test can flip. Like the real one it
 * is "the other side of the wire": it reads and writes the API's store directly, so only the
 * product's own requests appear in the audit log, while its changes appear in `api.changes`
 * under `controller:velero`.
 */
import {Controller, type ControllerContext} from './kube-api/controllers/base.js'
import type {StoreEvent} from './kube-api/store.js'
import {type Dict, type StoredObject, isoIn, nowIso} from './kube-api/types.js'

export interface VeleroOptions {
  /** Namespace Velero runs in and watches (default `velero`). */
  namespace: string
  /** From a Backup/Restore being seen (phase New) to InProgress. */
  startDelayMs: number
  /** InProgress → Completed (or the injected failure) for a Backup. */
  backupDurationMs: number
  /** InProgress → Completed (or the injected failure) for a Restore. */
  restoreDurationMs: number
  /** Items each backup/restore reports in `status.progress`. */
  totalItems: number
  /** Create the `default` BackupStorageLocation at start (default true). */
  defaultLocation: boolean
}

export type VeleroFailure = 'Failed' | 'PartiallyFailed' | 'FailedValidation'

const terminal = new Set(['Completed', 'Failed', 'PartiallyFailed', 'FailedValidation'])

interface Injected {
  phase: VeleroFailure
  reason: string
}

export class VeleroSim extends Controller {
  readonly options: VeleroOptions
  private readonly timersByUid = new Map<string, () => void>()
  private readonly failBackups: Injected[] = []
  private readonly failRestores: Injected[] = []

  constructor(ctx: ControllerContext, options: Partial<VeleroOptions> = {}) {
    super(ctx, 'controller:velero')
    this.options = {namespace: 'velero', startDelayMs: 20, backupDurationMs: 150, restoreDurationMs: 150, totalItems: 42, defaultLocation: true, ...options}
  }

  override start(): void {
    if (this.options.defaultLocation && !this.location('default')) {
      this.store.createIn(
        this.type('backupstoragelocations.velero.io'),
        {
          apiVersion: 'velero.io/v1',
          kind: 'BackupStorageLocation',
          metadata: {name: 'default', namespace: this.options.namespace},
          spec: {provider: 'aws', default: true, objectStorage: {bucket: 'homelab-backups', prefix: 'velero'}, config: {region: 'minio', s3ForcePathStyle: 'true', s3Url: 'http://127.0.0.1:9000'}},
          status: {phase: 'Available', lastValidationTime: nowIso()},
        },
        {source: this.source},
      )
    }
    super.start()
  }

  override stop(): void {
    super.stop()
    for (const cancel of this.timersByUid.values()) cancel()
    this.timersByUid.clear()
  }

  /** The next Backup to finish ends in `phase` instead of Completed. */
  failNextBackup(phase: VeleroFailure = 'Failed', reason = 'simulated failure: object storage upload failed'): void {
    this.failBackups.push({phase, reason})
  }

  /** The next Restore to finish ends in `phase` instead of Completed. */
  failNextRestore(phase: VeleroFailure = 'Failed', reason = 'simulated failure: restore of some items failed'): void {
    this.failRestores.push({phase, reason})
  }

  /** Flip a BackupStorageLocation's phase (Velero re-validates locations periodically). */
  setLocationPhase(phase: 'Available' | 'Unavailable', name = 'default'): StoredObject | undefined {
    return this.store.mutateIn(
      this.type('backupstoragelocations.velero.io'),
      this.options.namespace,
      name,
      (bsl) => {
        bsl.status = {
          ...(bsl.status ?? {}),
          phase,
          lastValidationTime: nowIso(),
          ...(phase === 'Unavailable' ? {message: `BackupStorageLocation "${name}" is unavailable: rpc error: code = Unknown desc = AccessDenied`} : {message: undefined}),
        }
        if (bsl.status.message === undefined) delete bsl.status.message
      },
      {source: this.source},
    )
  }

  backups(): StoredObject[] {
    return this.store.listIn(this.type('backups.velero.io'), this.options.namespace)
  }

  restores(): StoredObject[] {
    return this.store.listIn(this.type('restores.velero.io'), this.options.namespace)
  }

  protected interested(e: StoreEvent): boolean {
    return e.rt.group === 'velero.io' && e.object.metadata.namespace === this.options.namespace
  }

  protected reconcile(): void {
    for (const b of this.backups()) this.progress('backups', b)
    for (const r of this.restores()) this.progress('restores', r)
  }

  private location(name: string): StoredObject | undefined {
    return this.store.getIn(this.type('backupstoragelocations.velero.io'), this.options.namespace, name)
  }

  private defaultLocationName(): string {
    const all = this.store.listIn(this.type('backupstoragelocations.velero.io'), this.options.namespace)
    return (all.find((l) => l.spec?.default === true) ?? all.find((l) => l.metadata.name === 'default'))?.metadata.name ?? 'default'
  }

  private write(kind: 'backups' | 'restores', obj: StoredObject, change: (o: StoredObject) => void): StoredObject | undefined {
    return this.store.mutateIn(this.type(`${kind}.velero.io`), obj.metadata.namespace, obj.metadata.name, change, {source: this.source})
  }

  private later(obj: StoredObject, ms: number, fn: () => void): void {
    const uid = obj.metadata.uid
    if (this.timersByUid.has(uid)) return
    this.timersByUid.set(
      uid,
      this.ctx.timers.after(ms, () => {
        this.timersByUid.delete(uid)
        if (!this.isPaused) fn()
        this.kick()
      }, 'velero'),
    )
  }

  private progress(kind: 'backups' | 'restores', obj: StoredObject): void {
    const phase = obj.status?.phase as string | undefined
    if (phase && terminal.has(phase)) return
    if (!phase) {
      this.write(kind, obj, (o) => {
        o.status = {...(o.status ?? {}), phase: 'New'}
      })
      return
    }
    if (phase === 'New') {
      this.later(obj, this.options.startDelayMs, () => (kind === 'backups' ? this.startBackup(obj) : this.startRestore(obj)))
      return
    }
    if (phase === 'InProgress') {
      const ms = kind === 'backups' ? this.options.backupDurationMs : this.options.restoreDurationMs
      this.later(obj, ms, () => this.finish(kind, obj))
    }
  }

  private startBackup(b: StoredObject): void {
    const locationName = (b.spec?.storageLocation as string | undefined) || this.defaultLocationName()
    const location = this.location(locationName)
    this.write('backups', b, (o) => {
      o.spec = {...(o.spec ?? {}), storageLocation: locationName}
      o.metadata.labels = {...(o.metadata.labels ?? {}), 'velero.io/storage-location': locationName}
      if (!location) {
        o.status = {
          ...(o.status ?? {}),
          phase: 'FailedValidation',
          validationErrors: [`an existing backup storage location "${locationName}" wasn't found; create it or name another one in spec.storageLocation`],
        }
        return
      }
      if (location.spec?.accessMode === 'ReadOnly') {
        o.status = {...(o.status ?? {}), phase: 'FailedValidation', validationErrors: [`backup can't be created because backup storage location ${locationName} is currently in read-only mode`]}
        return
      }
      o.status = {
        ...(o.status ?? {}),
        phase: 'InProgress',
        startTimestamp: nowIso(),
        expiration: isoIn(ttlSeconds(o.spec?.ttl)),
        formatVersion: '1.1.0',
        version: 1,
        progress: {totalItems: this.options.totalItems, itemsBackedUp: 0},
      }
    })
  }

  private startRestore(r: StoredObject): void {
    const backupName = r.spec?.backupName as string | undefined
    const backup = backupName ? this.store.getIn(this.type('backups.velero.io'), this.options.namespace, backupName) : undefined
    this.write('restores', r, (o) => {
      const errors: string[] = []
      if (!backupName) errors.push('Either a backup or schedule must be specified as a source for the restore, but not both')
      else if (!backup) errors.push(`Error retrieving backup: backups.velero.io "${backupName}" not found`)
      else if (backup.status?.phase !== 'Completed' && backup.status?.phase !== 'PartiallyFailed') {
        errors.push(`Backup "${backupName}" is in phase ${backup.status?.phase ?? 'New'}, must be Completed or PartiallyFailed to restore`)
      }
      if (errors.length > 0) {
        o.status = {...(o.status ?? {}), phase: 'FailedValidation', validationErrors: errors}
        return
      }
      o.status = {...(o.status ?? {}), phase: 'InProgress', startTimestamp: nowIso(), progress: {totalItems: this.options.totalItems, itemsRestored: 0}}
    })
  }

  private finish(kind: 'backups' | 'restores', obj: StoredObject): void {
    const current = this.store.getIn(this.type(`${kind}.velero.io`), obj.metadata.namespace, obj.metadata.name)
    if (!current || current.metadata.uid !== obj.metadata.uid || current.status?.phase !== 'InProgress') return
    let failure = (kind === 'backups' ? this.failBackups : this.failRestores).shift()
    if (!failure && kind === 'backups') {
      const location = this.location(String(current.spec?.storageLocation ?? 'default'))
      if (location?.status?.phase === 'Unavailable') failure = {phase: 'Failed', reason: `backup storage location ${location.metadata.name} is unavailable`}
    }
    const itemsField = kind === 'backups' ? 'itemsBackedUp' : 'itemsRestored'
    this.write(kind, current, (o) => {
      const status: Dict = {...(o.status ?? {}), completionTimestamp: nowIso(), warnings: 0, errors: 0}
      if (!failure) {
        status.phase = 'Completed'
        status.progress = {totalItems: this.options.totalItems, [itemsField]: this.options.totalItems}
      } else if (failure.phase === 'PartiallyFailed') {
        status.phase = 'PartiallyFailed'
        status.errors = 1
        status.progress = {totalItems: this.options.totalItems, [itemsField]: this.options.totalItems - 1}
      } else if (failure.phase === 'FailedValidation') {
        status.phase = 'FailedValidation'
        status.validationErrors = [failure.reason]
      } else {
        status.phase = 'Failed'
        status.failureReason = failure.reason
        status.progress = {totalItems: this.options.totalItems, [itemsField]: Math.floor(this.options.totalItems / 2)}
      }
      o.status = status
    })
  }
}

/** Velero's default TTL is 720h; `ttl` is a Go duration such as `72h0m0s`. */
function ttlSeconds(ttl: unknown): number {
  if (typeof ttl !== 'string' || ttl === '') return 720 * 3600
  let total = 0
  for (const [, n, unit] of ttl.matchAll(/(\d+(?:\.\d+)?)(h|m|s|ms)/g)) {
    total += Number(n) * (unit === 'h' ? 3600 : unit === 'm' ? 60 : unit === 's' ? 1 : 0.001)
  }
  return Math.round(total) || 720 * 3600
}
