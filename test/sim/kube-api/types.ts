/** Shapes shared by the simulated API's parts. Objects are plain JSON, as on the wire. */

// Controllers read and write deeply nested spec/status; a loose type keeps that readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Dict = Record<string, any>

export interface OwnerReference {
  apiVersion: string
  kind: string
  name: string
  uid: string
  controller?: boolean
  blockOwnerDeletion?: boolean
}

export interface ManagedFieldsEntry {
  manager: string
  operation: 'Apply' | 'Update'
  apiVersion: string
  time: string
  fieldsType: 'FieldsV1'
  fieldsV1: Dict
  subresource?: string
}

export interface ObjectMeta {
  name?: string
  generateName?: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  generation?: number
  creationTimestamp?: string
  deletionTimestamp?: string
  deletionGracePeriodSeconds?: number
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: OwnerReference[]
  finalizers?: string[]
  managedFields?: ManagedFieldsEntry[]
  [key: string]: unknown
}

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: Dict
  status?: Dict
  [key: string]: unknown
}

/** A stored object: the store fills these in. */
export interface StoredObject extends KubeObject {
  apiVersion: string
  kind: string
  metadata: ObjectMeta & {name: string; uid: string; resourceVersion: string; creationTimestamp: string}
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

export function deepClone<T>(value: T): T {
  return structuredClone(value)
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]))
  }
  const ao = a as Dict
  const bo = b as Dict
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined)
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined)
  return ak.length === bk.length && ak.every((k) => deepEqual(ao[k], bo[k]))
}

export function isPlainObject(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const alphabet = 'bcdfghjklmnpqrstvwxz2456789'

/** The 5-character suffix the apiserver and controllers use for generated names. */
export function randomSuffix(length = 5): string {
  let s = ''
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)]
  return s
}

export function nowIso(): string {
  // Kubernetes timestamps have second precision (RFC 3339, no fraction).
  return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}

export function isoIn(seconds: number): string {
  return new Date(Math.floor(Date.now() / 1000) * 1000 + seconds * 1000).toISOString().replace('.000Z', 'Z')
}
