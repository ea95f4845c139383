/**
 * The object store behind the simulated apiserver: one monotonically increasing
 * resourceVersion for everything (as etcd's revision), uid/creationTimestamp/generation
 * bookkeeping, a bounded event history for watches, and synchronous listeners (watch streams
 * and simulated controllers). It knows nothing of HTTP, status subresources or graceful
 * deletion: the request handlers and controllers add those semantics on top.
 */
import {randomUUID} from 'node:crypto'
import {type ChangeLog, type Sequencer, summarize} from './recorder.js'
import {type ResourceRegistry, type ResourceType, apiVersionOf, hasStatus, resourceKey} from './resources.js'
import {fromLabelSelector, matchesLabels, parseLabelSelector, type Selector} from './selectors.js'
import {errors} from './status.js'
import {type Dict, type KubeObject, type StoredObject, type WatchEventType, deepClone, deepEqual, nowIso, randomSuffix} from './types.js'

export interface StoreEvent {
  type: WatchEventType
  rt: ResourceType
  /** The object after the change (for DELETED: its last state, with the deletion's resourceVersion). */
  object: StoredObject
  /** The object before the change (MODIFIED and DELETED). */
  old?: StoredObject
  rv: number
  source: string
}

export interface WriteOptions {
  /** Who made the change, for `api.changes`: `api`, `controller:kubelet`, … Direct use defaults to `test`. */
  source?: string
  /** Compute and return the result without storing it or telling anyone. */
  dryRun?: boolean
}

export interface ListOptions {
  namespace?: string
  /** Query syntax (`app=web,tier!=db`) or a LabelSelector object. */
  labelSelector?: string | Dict
  /** Predicate applied after the selectors. */
  where?: (o: StoredObject) => boolean
}

export type Listener = (event: StoreEvent) => void

function objKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`
}

/** Everything but metadata (and status, when a status subresource owns it) counts as spec for `generation`. */
function specPart(obj: KubeObject, rt: ResourceType): Dict {
  const out: Dict = {}
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'metadata' || k === 'apiVersion' || k === 'kind') continue
    if (k === 'status' && hasStatus(rt)) continue
    out[k] = v
  }
  return out
}

export class ObjectStore {
  private rv: number
  private readonly data = new Map<string, Map<string, StoredObject>>()
  private readonly history: StoreEvent[] = []
  private compactedRv: number
  private readonly listeners = new Set<Listener>()
  /** Errors thrown by listeners (they never reach the writer). */
  readonly listenerErrors: unknown[] = []

  constructor(
    readonly registry: ResourceRegistry,
    private readonly seq: Sequencer,
    private readonly changes: ChangeLog,
    private readonly historySize = 1000,
    initialResourceVersion = 1000,
  ) {
    this.rv = initialResourceVersion
    this.compactedRv = initialResourceVersion
  }

  /** The latest resourceVersion handed out, as lists report it. */
  get resourceVersion(): number {
    return this.rv
  }

  /** The oldest resourceVersion a watch may still start from. */
  get oldestWatchableResourceVersion(): number {
    return this.compactedRv
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Events after `rv`, or `undefined` when history no longer reaches back that far. */
  eventsSince(rv: number): StoreEvent[] | undefined {
    if (rv < this.compactedRv) return undefined
    return this.history.filter((e) => e.rv > rv)
  }

  /** Forget history up to now, so older watch resourceVersions get 410 (tests of relist logic). */
  compact(): void {
    this.history.length = 0
    this.compactedRv = this.rv
  }

  // ------------------------------------------------------------------ by resource type

  getIn(rt: ResourceType, namespace: string | undefined, name: string): StoredObject | undefined {
    const o = this.data.get(resourceKey(rt))?.get(objKey(rt.namespaced ? namespace : undefined, name))
    return o ? this.present(rt, o) : undefined
  }

  listIn(rt: ResourceType, namespace?: string): StoredObject[] {
    const m = this.data.get(resourceKey(rt))
    if (!m) return []
    const out: StoredObject[] = []
    for (const o of m.values()) if (!rt.namespaced || namespace === undefined || o.metadata.namespace === namespace) out.push(this.present(rt, o))
    return out.sort((a, b) => objKey(a.metadata.namespace, a.metadata.name).localeCompare(objKey(b.metadata.namespace, b.metadata.name)))
  }

  /**
   * The stored objects themselves, in the order they were first stored, neither copied nor
   * sorted: for simulated controllers and list requests that only read (a reconcile over a
   * thousand pods copied every one of them). Never change what this returns; `copyOf` or `getIn`
   * give a copy to change and write back. apiVersion is the storage version's.
   */
  scanIn(rt: ResourceType, namespace?: string): readonly StoredObject[] {
    const m = this.data.get(resourceKey(rt))
    if (!m) return []
    const out: StoredObject[] = []
    for (const o of m.values()) if (!rt.namespaced || namespace === undefined || o.metadata.namespace === namespace) out.push(o)
    return out
  }

  /** A copy of a stored object for the caller to keep or change (what getIn and listIn hand out). */
  copyOf(rt: ResourceType, o: StoredObject): StoredObject {
    return this.present(rt, o)
  }

  createIn(rt: ResourceType, input: KubeObject, opts: WriteOptions = {}): StoredObject {
    const storage = this.registry.storageType(rt.group, rt.resource) ?? rt
    const obj = deepClone(input) as StoredObject
    obj.metadata ??= {} as StoredObject['metadata']
    const ns = rt.namespaced ? (obj.metadata.namespace ?? 'default') : undefined
    const bucket = this.bucket(rt)
    if (!obj.metadata.name) {
      if (!obj.metadata.generateName) throw errors.invalid(rt.kind, rt.group, '', [{reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required'}])
      do obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`
      while (bucket.has(objKey(ns, obj.metadata.name)))
    }
    if (bucket.has(objKey(ns, obj.metadata.name))) throw errors.alreadyExists(rt, obj.metadata.name)
    obj.apiVersion = apiVersionOf(storage)
    obj.kind = storage.kind
    if (ns === undefined) delete obj.metadata.namespace
    else obj.metadata.namespace = ns
    obj.metadata.uid = randomUUID()
    obj.metadata.creationTimestamp = nowIso()
    obj.metadata.generation = 1
    delete obj.metadata.deletionTimestamp
    delete obj.metadata.deletionGracePeriodSeconds
    if (opts.dryRun) {
      obj.metadata.resourceVersion = ''
      return this.present(rt, obj)
    }
    obj.metadata.resourceVersion = String(++this.rv)
    bucket.set(objKey(ns, obj.metadata.name), obj)
    this.emit('ADDED', rt, obj, undefined, opts)
    return this.present(rt, obj)
  }

  /**
   * Replaces the stored object with `input` (matched by namespace/name). Identity fields are
   * kept; generation is bumped when anything but metadata/status changed. Writing an identical
   * object is a no-op that keeps the resourceVersion, as on a real apiserver.
   */
  updateIn(rt: ResourceType, input: KubeObject, opts: WriteOptions = {}): StoredObject {
    const ns = rt.namespaced ? input.metadata.namespace : undefined
    const name = input.metadata.name ?? ''
    const bucket = this.bucket(rt)
    const old = bucket.get(objKey(ns, name))
    if (!old) throw errors.notFound(rt, name)
    const next = deepClone(input) as StoredObject
    next.apiVersion = old.apiVersion
    next.kind = old.kind
    next.metadata = {
      ...next.metadata,
      name: old.metadata.name,
      uid: old.metadata.uid,
      creationTimestamp: old.metadata.creationTimestamp,
      resourceVersion: old.metadata.resourceVersion,
      generation: old.metadata.generation,
    }
    if (ns === undefined) delete next.metadata.namespace
    else next.metadata.namespace = old.metadata.namespace
    if (deepEqual(this.withoutManagedFieldTimes(next), this.withoutManagedFieldTimes(old))) return this.present(rt, old)
    if (!deepEqual(specPart(next, rt), specPart(old, rt))) next.metadata.generation = (old.metadata.generation ?? 1) + 1
    if (opts.dryRun) return this.present(rt, next)
    next.metadata.resourceVersion = String(++this.rv)
    bucket.set(objKey(ns, name), next)
    this.emit('MODIFIED', rt, next, old, opts)
    return this.present(rt, next)
  }

  removeIn(rt: ResourceType, namespace: string | undefined, name: string, opts: WriteOptions = {}): StoredObject {
    const ns = rt.namespaced ? namespace : undefined
    const bucket = this.bucket(rt)
    const old = bucket.get(objKey(ns, name))
    if (!old) throw errors.notFound(rt, name)
    if (opts.dryRun) return this.present(rt, old)
    bucket.delete(objKey(ns, name))
    const last = deepClone(old)
    last.metadata.resourceVersion = String(++this.rv)
    this.emit('DELETED', rt, last, old, opts)
    return this.present(rt, last)
  }

  // ------------------------------------------------------------------ convenience (tests, controllers)

  /** `ref` as kubectl names resources: `pods`, `nodes`, `deployments.apps`, `backups.velero.io`. */
  get(ref: string, namespaceOrName: string, name?: string): StoredObject | undefined {
    const rt = this.registry.resolve(ref)
    return name === undefined ? this.getIn(rt, undefined, namespaceOrName) : this.getIn(rt, namespaceOrName, name)
  }

  list(ref: string, opts: ListOptions = {}): StoredObject[] {
    const rt = this.registry.resolve(ref)
    let selector: Selector = []
    if (typeof opts.labelSelector === 'string') selector = parseLabelSelector(opts.labelSelector)
    else if (opts.labelSelector) selector = fromLabelSelector(opts.labelSelector)
    // Labels are matched on the stored objects, so only the matches are copied (the simulated
    // apiserver asks for the few control-plane Nodes among hundreds on every version lookup).
    const m = this.data.get(resourceKey(rt))
    if (!m) return []
    const out: StoredObject[] = []
    for (const o of m.values()) {
      if (rt.namespaced && opts.namespace !== undefined && o.metadata.namespace !== opts.namespace) continue
      if (!matchesLabels(selector, o.metadata.labels)) continue
      const copy = this.present(rt, o)
      if (!opts.where || opts.where(copy)) out.push(copy)
    }
    return out.sort((a, b) => objKey(a.metadata.namespace, a.metadata.name).localeCompare(objKey(b.metadata.namespace, b.metadata.name)))
  }

  /** Creates an object; its type comes from apiVersion/kind. */
  create(obj: KubeObject, opts: WriteOptions = {}): StoredObject {
    return this.createIn(this.typeOf(obj), obj, opts)
  }

  update(obj: KubeObject, opts: WriteOptions = {}): StoredObject {
    return this.updateIn(this.typeOf(obj), obj, opts)
  }

  /**
   * Read-modify-write: `fn` changes a copy in place (or returns a replacement). Returns the
   * stored result, or undefined when the object does not exist.
   */
  mutate(ref: string, namespace: string | undefined, name: string, fn: (o: StoredObject) => StoredObject | void, opts: WriteOptions = {}): StoredObject | undefined {
    const rt = this.registry.resolve(ref)
    return this.mutateIn(rt, namespace, name, fn, opts)
  }

  mutateIn(rt: ResourceType, namespace: string | undefined, name: string, fn: (o: StoredObject) => StoredObject | void, opts: WriteOptions = {}): StoredObject | undefined {
    const current = this.getIn(rt, namespace, name)
    if (!current) return undefined
    const next = fn(current) ?? current
    return this.updateIn(rt, next, opts)
  }

  /** Merge-patches (RFC 7386 semantics: null deletes) the stored object, status included. */
  patch(ref: string, namespace: string | undefined, name: string, patch: Dict, opts: WriteOptions = {}): StoredObject | undefined {
    return this.mutate(ref, namespace, name, (o) => mergeInto(o, patch) as StoredObject, opts)
  }

  /** Removes at once (no grace period, no kubelet): the way to make an object vanish in a test. */
  delete(ref: string, namespace: string | undefined, name: string, opts: WriteOptions = {}): StoredObject | undefined {
    const rt = this.registry.resolve(ref)
    if (!this.getIn(rt, namespace, name)) return undefined
    return this.removeIn(rt, namespace, name, opts)
  }

  typeOf(obj: KubeObject): ResourceType {
    const rt = obj.apiVersion && obj.kind ? this.registry.byKind(obj.apiVersion, obj.kind) : undefined
    if (!rt) throw new Error(`simulated API: no resource serves ${obj.apiVersion ?? '?'} ${obj.kind ?? '?'}`)
    return rt
  }

  /** Drops everything of one resource (a deleted CRD's objects), emitting DELETED for each. */
  dropAll(rt: ResourceType, opts: WriteOptions = {}): void {
    for (const o of this.listIn(rt)) this.removeIn(rt, o.metadata.namespace, o.metadata.name, opts)
  }

  // ------------------------------------------------------------------ internals

  private bucket(rt: ResourceType): Map<string, StoredObject> {
    const key = resourceKey(rt)
    let m = this.data.get(key)
    if (!m) this.data.set(key, (m = new Map()))
    return m
  }

  /** A copy for the caller, with apiVersion of the version it asked through. */
  private present(rt: ResourceType, o: StoredObject): StoredObject {
    const copy = deepClone(o)
    copy.apiVersion = apiVersionOf(rt)
    return copy
  }

  private withoutManagedFieldTimes(o: StoredObject): StoredObject {
    const c = deepClone(o)
    for (const e of c.metadata.managedFields ?? []) e.time = ''
    return c
  }

  private emit(type: WatchEventType, rt: ResourceType, obj: StoredObject, old: StoredObject | undefined, opts: WriteOptions): void {
    const source = opts.source ?? 'test'
    const event: StoreEvent = {type, rt, object: deepClone(obj), old: old ? deepClone(old) : undefined, rv: this.rv, source}
    this.history.push(event)
    while (this.history.length > this.historySize) this.compactedRv = this.history.shift()!.rv
    const {summary, diff} = summarize(rt.resource, type, old, obj)
    this.changes.push({
      seq: this.seq.next(),
      at: Date.now(),
      source,
      type,
      group: rt.group,
      resource: rt.resource,
      namespace: obj.metadata.namespace,
      name: obj.metadata.name,
      resourceVersion: obj.metadata.resourceVersion,
      summary,
      diff,
    })
    for (const l of [...this.listeners]) {
      try {
        l(event)
      } catch (error) {
        this.listenerErrors.push(error)
      }
    }
  }
}

function mergeInto(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch
  const out: Dict = target && typeof target === 'object' && !Array.isArray(target) ? {...(target as Dict)} : {}
  for (const [k, v] of Object.entries(patch as Dict)) {
    if (v === null) delete out[k]
    else out[k] = mergeInto(out[k], v)
  }
  return out
}
