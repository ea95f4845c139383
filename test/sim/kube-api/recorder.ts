/**
 * What tests read to prove orderings: the audit log (every HTTP request, as the apiserver's
 * audit log would have it) and the change log (every change to stored objects, by whom, plus
 * k3s service events). Both draw from one sequence, so "A happened before B" across the two
 * is a comparison of `seq`.
 */
import type {Dict, KubeObject, WatchEventType} from './types.js'

export class Sequencer {
  private n = 0
  next(): number {
    return ++this.n
  }
  get current(): number {
    return this.n
  }
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection'

export const writeVerbs: ReadonlySet<string> = new Set(['create', 'update', 'patch', 'delete', 'deletecollection'])

export interface AuditEntry {
  /**
   * Taken when the response was decided, so it is after every change the request caused
   * ("request R happened before Y" ⇔ `R.seq < Y.seq`).
   */
  seq: number
  /** Taken when the request arrived ("X happened before request R" ⇔ `X.seq < R.startSeq`). */
  startSeq: number
  /** Milliseconds since the epoch, when the response was decided (for watches: when it started). */
  at: number
  method: string
  /** Request path without the query. */
  path: string
  query: Record<string, string>
  /** Kubernetes verb for resource requests; `discovery` / `health` / `version` otherwise. */
  verb: Verb | 'discovery' | 'health' | 'version' | 'metrics' | 'unknown'
  group?: string
  version?: string
  resource?: string
  subresource?: string
  namespace?: string
  name?: string
  code: number
  /** The Status reason of a failed request (NotFound, Conflict, TooManyRequests, …). */
  reason?: string
  userAgent?: string
  contentType?: string
  dryRun: boolean
  fieldManager?: string
  /** Parsed request body of writes (JSON or YAML), when there was one. */
  body?: unknown
}

export interface AuditFilter {
  verb?: string | string[]
  method?: string
  group?: string
  resource?: string
  subresource?: string | null
  namespace?: string
  name?: string
  code?: number
}

function matches(e: AuditEntry, f: AuditFilter): boolean {
  if (f.verb !== undefined && !(Array.isArray(f.verb) ? f.verb.includes(e.verb) : f.verb === e.verb)) return false
  if (f.method !== undefined && f.method !== e.method) return false
  if (f.group !== undefined && f.group !== e.group) return false
  if (f.resource !== undefined && f.resource !== e.resource) return false
  if (f.subresource === null && e.subresource !== undefined) return false
  if (typeof f.subresource === 'string' && f.subresource !== e.subresource) return false
  if (f.namespace !== undefined && f.namespace !== e.namespace) return false
  if (f.name !== undefined && f.name !== e.name) return false
  if (f.code !== undefined && f.code !== e.code) return false
  return true
}

export class AuditLog extends Array<AuditEntry> {
  // filter/map/slice on the log give plain arrays, not new logs.
  static override get [Symbol.species](): ArrayConstructor {
    return Array
  }

  /**
   * Write requests (create, update, patch, delete, deletecollection; an eviction is a create on
   * `pods/eviction`). Dry runs are left out unless asked for; failed writes are included unless
   * `successfulOnly`.
   */
  writes(opts: {includeDryRun?: boolean; successfulOnly?: boolean} = {}): AuditEntry[] {
    return this.filter(
      (e) => writeVerbs.has(e.verb) && (opts.includeDryRun || !e.dryRun) && (!opts.successfulOnly || (e.code >= 200 && e.code < 300)),
    )
  }

  reads(): AuditEntry[] {
    return this.filter((e) => !writeVerbs.has(e.verb))
  }

  matching(filter: AuditFilter): AuditEntry[] {
    return this.filter((e) => matches(e, filter))
  }

  since(seq: number): AuditEntry[] {
    return this.filter((e) => e.seq > seq)
  }

  clear(): void {
    this.length = 0
  }
}

export interface ChangeEntry {
  seq: number
  at: number
  /** `api` (a client request), `controller:<name>`, `control` (k3s service events), `test` (direct store access). */
  source: string
  type: WatchEventType | 'EVENT'
  group: string
  resource: string
  namespace?: string
  name: string
  resourceVersion?: string
  /** Short human summary: `Ready False→True, kubeletVersion v1.31.4+k3s1→v1.31.5+k3s1`. */
  summary: string
  /** Notable fields that changed, old and new value. */
  diff: Record<string, [unknown, unknown]>
  /** For EVENT entries: `k3s-started`, `k3s-stopped`, `api-down`, `api-up`. */
  event?: string
  data?: Dict
}

export class ChangeLog extends Array<ChangeEntry> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array
  }

  of(resource: string, name?: string): ChangeEntry[] {
    return this.filter((c) => c.resource === resource && (name === undefined || c.name === name))
  }

  events(event?: string): ChangeEntry[] {
    return this.filter((c) => c.type === 'EVENT' && (event === undefined || c.event === event))
  }

  /** Entries where `field` (a key of `diff`, e.g. `ready`, `kubeletVersion`, `phase`) changed. */
  withField(field: string): ChangeEntry[] {
    return this.filter((c) => field in c.diff)
  }

  since(seq: number): ChangeEntry[] {
    return this.filter((c) => c.seq > seq)
  }

  clear(): void {
    this.length = 0
  }
}

function condition(obj: KubeObject | undefined, type: string): string | undefined {
  const c = ((obj?.status?.conditions ?? []) as Dict[]).find((x) => x.type === type)
  return c?.status as string | undefined
}

/** The fields worth naming when an object of this resource changes. */
const notable: Record<string, Record<string, (o: KubeObject | undefined) => unknown>> = {
  nodes: {
    ready: (o) => condition(o, 'Ready'),
    kubeletVersion: (o) => o?.status?.nodeInfo?.kubeletVersion,
    unschedulable: (o) => o?.spec?.unschedulable === true,
    taints: (o) => ((o?.spec?.taints ?? []) as Dict[]).map((t) => `${t.key}:${t.effect}`).join(',') || undefined,
    labels: (o) => o?.metadata.labels,
    annotations: (o) => o?.metadata.annotations,
  },
  pods: {
    phase: (o) => o?.status?.phase,
    ready: (o) => condition(o, 'Ready'),
    nodeName: (o) => o?.spec?.nodeName,
    deletionTimestamp: (o) => o?.metadata.deletionTimestamp,
  },
  poddisruptionbudgets: {
    disruptionsAllowed: (o) => o?.status?.disruptionsAllowed,
    currentHealthy: (o) => o?.status?.currentHealthy,
  },
  daemonsets: {numberAvailable: (o) => o?.status?.numberAvailable},
  deployments: {availableReplicas: (o) => o?.status?.availableReplicas},
  replicasets: {availableReplicas: (o) => o?.status?.availableReplicas},
  statefulsets: {availableReplicas: (o) => o?.status?.availableReplicas},
  backups: {phase: (o) => o?.status?.phase},
  restores: {phase: (o) => o?.status?.phase},
  backupstoragelocations: {phase: (o) => o?.status?.phase},
  leases: {holder: (o) => o?.spec?.holderIdentity, renewTime: (o) => o?.spec?.renewTime},
}

function show(v: unknown): string {
  if (v === undefined) return '∅'
  return typeof v === 'string' ? v : JSON.stringify(v)
}

export function summarize(resource: string, type: WatchEventType, old: KubeObject | undefined, next: KubeObject | undefined): {summary: string; diff: Record<string, [unknown, unknown]>} {
  const diff: Record<string, [unknown, unknown]> = {}
  const fields = notable[resource] ?? {phase: (o: KubeObject | undefined) => o?.status?.phase}
  for (const [field, get] of Object.entries(fields)) {
    const a = type === 'ADDED' ? undefined : get(old)
    const b = type === 'DELETED' ? undefined : get(next)
    if (JSON.stringify(a) !== JSON.stringify(b)) diff[field] = [a, b]
  }
  if (type === 'MODIFIED' && old && next && old.metadata.generation !== next.metadata.generation) {
    diff.generation = [old.metadata.generation, next.metadata.generation]
  }
  const parts = Object.entries(diff)
    .filter(([f]) => f !== 'labels' && f !== 'annotations')
    .map(([f, [a, b]]) => (type === 'MODIFIED' ? `${f} ${show(a)}→${show(b)}` : `${f}=${show(type === 'DELETED' ? a : b)}`))
  if (type === 'MODIFIED' && (diff.labels || diff.annotations)) parts.push('metadata changed')
  const head = type === 'ADDED' ? 'created' : type === 'DELETED' ? 'deleted' : ''
  const summary = [head, parts.join(', ')].filter(Boolean).join(': ') || 'updated'
  return {summary, diff}
}
