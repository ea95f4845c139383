/**
 * Field ownership for server-side apply, simplified: a manager owns a set of leaf paths
 * (`f:spec`, `f:concurrency`; `k:{"name":"x"}` for an element of a keyed list; a list without
 * keys is one leaf). Apply conflicts when it changes a leaf another manager owns (unless
 * `force`), and removes leaves this manager applied before and no longer applies, if nobody else
 * owns them. Updates (PUT and the other patch types) take ownership of the leaves they change.
 * The sets are stored in `metadata.managedFields[].fieldsV1` in upstream's nested format.
 */
import type {Dict, ManagedFieldsEntry} from './types.js'
import {deepClone, deepEqual, isPlainObject} from './types.js'

/** Merge keys of the list at `path` (segments as in fieldsV1), or undefined for an atomic list. */
export type ListKeys = (path: string[]) => string[] | undefined

type Leaves = Map<string, unknown>

const enc = (path: string[]): string => JSON.stringify(path)
const dec = (key: string): string[] => JSON.parse(key) as string[]

/** The part of an object a write can own: everything but identity and server-set metadata. */
function ownable(obj: Dict, scope: 'main' | 'status', hasStatusSubresource: boolean): Dict {
  if (scope === 'status') return obj.status === undefined ? {} : {status: obj.status}
  const out: Dict = {}
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind' || k === 'metadata') continue
    if (k === 'status' && hasStatusSubresource) continue
    out[k] = v
  }
  const meta: Dict = {}
  if (isPlainObject(obj.metadata?.labels)) meta.labels = obj.metadata.labels
  if (isPlainObject(obj.metadata?.annotations)) meta.annotations = obj.metadata.annotations
  if (Object.keys(meta).length > 0) out.metadata = meta
  return out
}

function collect(value: unknown, path: string[], keysOf: ListKeys, out: Leaves): void {
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) collect(v, [...path, `f:${k}`], keysOf, out)
    return
  }
  if (Array.isArray(value) && value.length > 0) {
    const keys = keysOf(path)
    if (keys && value.every((e) => isPlainObject(e) && keys.every((k) => e[k] !== undefined))) {
      for (const element of value as Dict[]) {
        const seg = `k:${JSON.stringify(Object.fromEntries(keys.map((k) => [k, element[k]])))}`
        collect(element, [...path, seg], keysOf, out)
      }
      return
    }
  }
  out.set(enc(path), value)
}

export function leaves(obj: Dict, keysOf: ListKeys, scope: 'main' | 'status', hasStatusSubresource: boolean): Leaves {
  const out: Leaves = new Map()
  collect(ownable(obj, scope, hasStatusSubresource), [], keysOf, out)
  out.delete(enc([]))
  return out
}

export function encodeFieldsV1(paths: Iterable<string>): Dict {
  const root: Dict = {}
  for (const key of paths) {
    let node = root
    for (const seg of dec(key)) node = node[seg] ??= {}
  }
  return root
}

export function decodeFieldsV1(fields: Dict | undefined): Set<string> {
  const out = new Set<string>()
  const walk = (node: Dict, path: string[]): void => {
    const children = Object.keys(node).filter((k) => k !== '.')
    if (children.length === 0) {
      if (path.length > 0) out.add(enc(path))
      return
    }
    for (const k of children) walk(node[k] as Dict, [...path, k])
  }
  if (fields) walk(fields, [])
  return out
}

/** `.spec.containers[name="x"].image`: how upstream prints a path in a conflict message. */
export function renderPath(key: string): string {
  return dec(key)
    .map((seg) => {
      if (seg.startsWith('f:')) return `.${seg.slice(2)}`
      const keyFields = JSON.parse(seg.slice(2)) as Dict
      return `[${Object.entries(keyFields)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(',')}]`
    })
    .join('')
}

function deletePath(obj: Dict, path: string[]): void {
  const parents: Array<{container: Dict | Dict[]; at: string | number}> = []
  let node: unknown = obj
  for (const seg of path) {
    if (seg.startsWith('f:')) {
      if (!isPlainObject(node)) return
      parents.push({container: node, at: seg.slice(2)})
      node = node[seg.slice(2)]
    } else {
      if (!Array.isArray(node)) return
      const want = JSON.parse(seg.slice(2)) as Dict
      const idx = (node as Dict[]).findIndex((e) => Object.entries(want).every(([k, v]) => deepEqual(e[k], v)))
      if (idx < 0) return
      parents.push({container: node as Dict[], at: idx})
      node = (node as Dict[])[idx]
    }
    if (node === undefined) return
  }
  // Remove the leaf, then every container it leaves empty (a keyed element holding only its keys counts as empty).
  for (let i = parents.length - 1; i >= 0; i--) {
    const {container, at} = parents[i]
    if (Array.isArray(container)) container.splice(at as number, 1)
    else delete container[at as string]
    if (i === 0) break
    const reachedBy = path[i - 1]
    const empty = Array.isArray(container)
      ? container.length === 0
      : reachedBy.startsWith('k:')
        ? Object.keys(container).every((k) => k in (JSON.parse(reachedBy.slice(2)) as Dict))
        : Object.keys(container).length === 0
    if (!empty) break
  }
}

/** Apply's merge: maps merge, keyed lists merge by key, everything else is replaced. */
function applyMerge(current: unknown, applied: unknown, path: string[], keysOf: ListKeys): unknown {
  if (isPlainObject(applied)) {
    const out: Dict = isPlainObject(current) ? deepClone(current) : {}
    for (const [k, v] of Object.entries(applied)) {
      if (v === null) delete out[k]
      else out[k] = applyMerge(out[k], v, [...path, `f:${k}`], keysOf)
    }
    return out
  }
  if (Array.isArray(applied) && Array.isArray(current)) {
    const keys = keysOf(path)
    const isKeyed = (arr: unknown[]): boolean => !!keys && arr.every((e) => isPlainObject(e) && keys.every((k) => e[k] !== undefined))
    if (keys && isKeyed(applied) && isKeyed(current)) {
      const out = (current as Dict[]).map((e) => deepClone(e))
      for (const element of applied as Dict[]) {
        const idx = out.findIndex((e) => keys.every((k) => deepEqual(e[k], element[k])))
        const seg = `k:${JSON.stringify(Object.fromEntries(keys.map((k) => [k, element[k]])))}`
        if (idx >= 0) out[idx] = applyMerge(out[idx], element, [...path, seg], keysOf) as Dict
        else out.push(deepClone(element))
      }
      return out
    }
  }
  return deepClone(applied)
}

export interface OwnershipOptions {
  keysOf: ListKeys
  hasStatusSubresource: boolean
  apiVersion: string
  now: string
}

export interface ApplyConflict {
  manager: string
  path: string
}

export interface ApplyResult {
  object: Dict
  conflicts: ApplyConflict[]
}

function entryFor(entries: ManagedFieldsEntry[], manager: string, operation: 'Apply' | 'Update', subresource?: string) {
  return entries.find((e) => e.manager === manager && e.operation === operation && e.subresource === subresource)
}

function setEntry(
  entries: ManagedFieldsEntry[],
  manager: string,
  operation: 'Apply' | 'Update',
  subresource: string | undefined,
  paths: Set<string>,
  opts: OwnershipOptions,
): ManagedFieldsEntry[] {
  const rest = entries.filter((e) => !(e.manager === manager && e.operation === operation && e.subresource === subresource))
  if (paths.size === 0) return rest
  const entry: ManagedFieldsEntry = {manager, operation, apiVersion: opts.apiVersion, time: opts.now, fieldsType: 'FieldsV1', fieldsV1: encodeFieldsV1(paths)}
  if (subresource) entry.subresource = subresource
  return [...rest, entry]
}

/**
 * Server-side apply of `applied` by `manager` onto `existing` (undefined: create). The result's
 * `metadata` is `existing`'s with applied labels/annotations merged and managedFields updated.
 */
export function serverSideApply(existing: Dict | undefined, applied: Dict, manager: string, force: boolean, opts: OwnershipOptions): ApplyResult {
  const base: Dict = existing ? deepClone(existing) : {metadata: {}}
  let entries: ManagedFieldsEntry[] = deepClone(base.metadata?.managedFields ?? [])
  const appliedLeaves = leaves(applied, opts.keysOf, 'main', opts.hasStatusSubresource)
  const currentLeaves = leaves(base, opts.keysOf, 'main', opts.hasStatusSubresource)

  const conflicts: ApplyConflict[] = []
  entries = entries.map((entry) => {
    if (entry.manager === manager || entry.subresource) return entry
    const owned = decodeFieldsV1(entry.fieldsV1)
    let changed = false
    for (const [path, value] of appliedLeaves) {
      if (!owned.has(path) || deepEqual(currentLeaves.get(path), value)) continue
      if (!force) conflicts.push({manager: entry.manager, path})
      else {
        owned.delete(path)
        changed = true
      }
    }
    return changed ? {...entry, fieldsV1: encodeFieldsV1(owned)} : entry
  })
  entries = entries.filter((e) => decodeFieldsV1(e.fieldsV1).size > 0)
  if (conflicts.length > 0) return {object: base, conflicts}

  const merged = applyMerge(base, ownable(applied, 'main', opts.hasStatusSubresource), [], opts.keysOf) as Dict
  const previously = decodeFieldsV1(entryFor(entries, manager, 'Apply')?.fieldsV1)
  const ownedByOthers = new Set<string>()
  for (const e of entries) if (!(e.manager === manager && e.operation === 'Apply')) for (const p of decodeFieldsV1(e.fieldsV1)) ownedByOthers.add(p)
  for (const path of previously) {
    if (!appliedLeaves.has(path) && !ownedByOthers.has(path)) deletePath(merged, dec(path))
  }
  entries = setEntry(entries, manager, 'Apply', undefined, new Set(appliedLeaves.keys()), opts)
  merged.metadata = {...(merged.metadata ?? {}), managedFields: entries}
  return {object: merged, conflicts}
}

/** After a non-apply write: `manager` now owns the leaves it changed; removed leaves are owned by nobody. */
export function recordUpdate(
  old: Dict | undefined,
  next: Dict,
  manager: string,
  subresource: string | undefined,
  opts: OwnershipOptions,
): ManagedFieldsEntry[] {
  const scope = subresource === 'status' ? 'status' : 'main'
  let entries: ManagedFieldsEntry[] = deepClone(old?.metadata?.managedFields ?? next.metadata?.managedFields ?? [])
  const before = old ? leaves(old, opts.keysOf, scope, opts.hasStatusSubresource) : new Map<string, unknown>()
  const after = leaves(next, opts.keysOf, scope, opts.hasStatusSubresource)
  const changed = new Set<string>()
  for (const [p, v] of after) if (!before.has(p) || !deepEqual(before.get(p), v)) changed.add(p)
  const removed = new Set<string>([...before.keys()].filter((p) => !after.has(p)))
  if (changed.size === 0 && removed.size === 0) return entries
  entries = entries
    .map((e) => {
      const owned = decodeFieldsV1(e.fieldsV1)
      let touched = false
      for (const p of [...changed, ...removed]) {
        if (owned.delete(p)) touched = true
      }
      return touched ? {...e, fieldsV1: encodeFieldsV1(owned)} : e
    })
    .filter((e) => decodeFieldsV1(e.fieldsV1).size > 0)
  const mine = decodeFieldsV1(entryFor(entries, manager, 'Update', subresource)?.fieldsV1)
  for (const p of changed) mine.add(p)
  return setEntry(entries, manager, 'Update', subresource, mine, opts)
}
