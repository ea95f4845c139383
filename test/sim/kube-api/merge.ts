/**
 * The three patch formats the apiserver accepts (RFC 7386 merge patch, RFC 6902 JSON patch and
 * strategic merge patch) plus the merge used by server-side apply.
 *
 * Strategic merge patch knows list merge keys from Go struct tags upstream; here a table of the
 * fields the simulated built-in kinds use stands in for them. Lists not in the table are
 * replaced, as upstream does for fields without a patch strategy (e.g. `spec.taints`).
 */
import {type Dict, deepClone, deepEqual, isPlainObject} from './types.js'

/** Thrown when a patch cannot be applied; the server answers 422 (or 400 for a malformed patch). */
export class PatchError extends Error {
  constructor(
    message: string,
    readonly malformed = false,
  ) {
    super(message)
    this.name = 'PatchError'
  }
}

/** Lists of objects merged by key under strategic merge patch (upstream `patchMergeKey` tags). */
export const strategicMergeKeys: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  ports: 'containerPort',
  conditions: 'type',
  addresses: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
}

/** Lists of scalars that strategic merge patch unions instead of replacing. */
const strategicMergeScalarLists = new Set(['finalizers'])

// ---------------------------------------------------------------- RFC 7386 merge patch

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return deepClone(patch)
  const result: Dict = isPlainObject(target) ? deepClone(target) : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else result[key] = mergePatch(result[key], value)
  }
  return result
}

// ---------------------------------------------------------------- strategic merge patch

export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return deepClone(patch)
  return smpMap(isPlainObject(target) ? target : {}, patch)
}

function smpMap(target: Dict, patch: Dict): Dict | undefined {
  const directive = patch.$patch
  if (directive === 'delete') return undefined
  if (directive === 'replace') {
    const copy = deepClone(patch)
    delete copy.$patch
    return copy
  }
  if (directive !== undefined) throw new PatchError(`Unknown patch type: ${String(directive)}`, true)

  let result = deepClone(target)
  const retain = patch.$retainKeys
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length)
      if (Array.isArray(result[field]) && Array.isArray(value)) {
        result[field] = (result[field] as unknown[]).filter((v) => !value.some((d) => deepEqual(d, v)))
      }
      continue
    }
    if (value === null) {
      delete result[key]
      continue
    }
    if (Array.isArray(value)) {
      result[key] = smpList(key, result[key], value)
    } else if (isPlainObject(value)) {
      const merged = smpMap(isPlainObject(result[key]) ? result[key] : {}, value)
      if (merged === undefined) delete result[key]
      else result[key] = merged
    } else {
      result[key] = value
    }
  }
  if (Array.isArray(retain)) {
    const keep = new Set(retain.map(String))
    result = Object.fromEntries(Object.entries(result).filter(([k]) => keep.has(k)))
  }
  return result
}

function smpList(field: string, current: unknown, patch: unknown[]): unknown[] {
  const existing = Array.isArray(current) ? current : []
  if (strategicMergeScalarLists.has(field) && patch.every((v) => !isPlainObject(v))) {
    const out = [...existing]
    for (const v of patch) if (!out.some((e) => deepEqual(e, v))) out.push(v)
    return out
  }
  const key = strategicMergeKeys[field]
  const keyed = key !== undefined && patch.every((v) => isPlainObject(v) && (v[key] !== undefined || v.$patch === 'replace'))
  if (!keyed) return deepClone(patch).filter((v) => !(isPlainObject(v) && v.$patch === 'delete'))
  if (patch.some((v) => isPlainObject(v) && v.$patch === 'replace')) {
    return patch.filter((v) => !(isPlainObject(v) && v.$patch === 'replace')).map((v) => deepClone(v))
  }
  const out = existing.map((v) => deepClone(v))
  for (const element of patch as Dict[]) {
    const idx = out.findIndex((e) => isPlainObject(e) && deepEqual(e[key], element[key]))
    if (element.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1)
      continue
    }
    if (idx >= 0) {
      const merged = smpMap(out[idx] as Dict, element)
      if (merged === undefined) out.splice(idx, 1)
      else out[idx] = merged
    } else {
      const copy = deepClone(element)
      delete copy.$patch
      out.push(copy)
    }
  }
  return out
}

// ---------------------------------------------------------------- RFC 6902 JSON patch

interface JsonPatchOp {
  op: string
  path: string
  from?: string
  value?: unknown
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return []
  if (!pointer.startsWith('/')) throw new PatchError(`invalid JSON pointer "${pointer}"`)
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function resolveParent(doc: unknown, tokens: string[], op: string, pointer: string): {parent: Dict | unknown[]; last: string} {
  let node: unknown = doc
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[Number(t)]
    else if (isPlainObject(node)) node = node[t]
    else node = undefined
    if (node === undefined || node === null) {
      throw new PatchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`)
    }
  }
  if (!Array.isArray(node) && !isPlainObject(node)) {
    throw new PatchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`)
  }
  return {parent: node, last: tokens[tokens.length - 1]}
}

function getAt(doc: unknown, pointer: string, op: string): unknown {
  let node = doc
  for (const t of parsePointer(pointer)) {
    if (Array.isArray(node)) node = node[Number(t)]
    else if (isPlainObject(node)) node = node[t]
    else node = undefined
    if (node === undefined) throw new PatchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`)
  }
  return node
}

function arrayIndex(arr: unknown[], token: string, allowEnd: boolean, op: string, pointer: string): number {
  if (token === '-' && allowEnd) return arr.length
  const i = Number(token)
  if (!/^\d+$/.test(token) || i > arr.length || (!allowEnd && i >= arr.length)) {
    throw new PatchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`)
  }
  return i
}

function addAt(doc: unknown, pointer: string, value: unknown, op: string): unknown {
  const tokens = parsePointer(pointer)
  if (tokens.length === 0) return deepClone(value)
  const {parent, last} = resolveParent(doc, tokens, op, pointer)
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, op, pointer), 0, deepClone(value))
  else parent[last] = deepClone(value)
  return doc
}

function removeAt(doc: unknown, pointer: string, op: string): unknown {
  const tokens = parsePointer(pointer)
  const {parent, last} = resolveParent(doc, tokens, op, pointer)
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(parent, last, false, op, pointer), 1)
  } else {
    if (!(last in parent)) throw new PatchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`)
    delete parent[last]
  }
  return doc
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) {
    throw new PatchError('json: cannot unmarshal object into Go value of type jsonpatch.Patch', true)
  }
  let doc = deepClone(target)
  for (const raw of ops) {
    if (!isPlainObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw new PatchError('invalid JSON patch operation', true)
    }
    const op = raw as JsonPatchOp
    switch (op.op) {
      case 'add':
        doc = addAt(doc, op.path, op.value, 'add')
        break
      case 'remove':
        doc = removeAt(doc, op.path, 'remove')
        break
      case 'replace':
        getAt(doc, op.path, 'replace')
        doc = removeAt(doc, op.path, 'replace')
        doc = addAt(doc, op.path, op.value, 'replace')
        break
      case 'move': {
        const value = getAt(doc, op.from ?? '', 'move')
        doc = removeAt(doc, op.from ?? '', 'move')
        doc = addAt(doc, op.path, value, 'move')
        break
      }
      case 'copy':
        doc = addAt(doc, op.path, getAt(doc, op.from ?? '', 'copy'), 'copy')
        break
      case 'test':
        if (!deepEqual(getAt(doc, op.path, 'test'), op.value)) {
          throw new PatchError(`testing value ${op.path} failed: test failed`)
        }
        break
      default:
        throw new PatchError(`Unexpected kind: ${op.op}`, true)
    }
  }
  return doc
}
