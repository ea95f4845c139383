/** Label and field selectors in the apiserver's query syntax, and `LabelSelector` objects. */
import {ApiError, errors} from './status.js'
import type {Dict, KubeObject} from './types.js'

export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'

export interface Requirement {
  key: string
  operator: Operator
  values: string[]
}

/** A parsed selector; `null` (distinct from empty) matches nothing, as a nil LabelSelector does. */
export type Selector = Requirement[] | null

const keyPattern = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/

function splitTopLevel(s: string): string[] {
  const out: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of s) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  if (cur.trim() !== '' || out.length > 0) out.push(cur)
  return out
}

function bad(text: string, why: string): ApiError {
  return errors.badRequest(`unable to parse requirement: ${why}: "${text}"`)
}

/** Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`. */
export function parseLabelSelector(text: string | undefined): Requirement[] {
  if (!text || text.trim() === '') return []
  const reqs: Requirement[] = []
  for (const raw of splitTopLevel(text)) {
    const part = raw.trim()
    if (part === '') throw bad(text, 'empty requirement')
    let m: RegExpMatchArray | null
    if ((m = part.match(/^!\s*(\S+)$/))) {
      reqs.push({key: m[1], operator: 'DoesNotExist', values: []})
    } else if ((m = part.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      const values = m[3].split(',').map((v) => v.trim())
      if (values.some((v) => v === '') && values.length > 1) throw bad(text, 'empty value in set')
      reqs.push({key: m[1], operator: m[2] === 'in' ? 'In' : 'NotIn', values: values.filter((v) => v !== '' || values.length === 1)})
    } else if ((m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      reqs.push({key: m[1], operator: m[2] === '!=' ? 'NotIn' : 'In', values: [m[3]]})
    } else if ((m = part.match(/^(\S+)$/))) {
      reqs.push({key: m[1], operator: 'Exists', values: []})
    } else {
      throw bad(text, 'found unexpected token')
    }
  }
  for (const r of reqs) if (!keyPattern.test(r.key)) throw bad(text, `invalid label key "${r.key}"`)
  return reqs
}

/** A `metav1.LabelSelector` object. Undefined/null matches nothing; `{}` matches everything. */
export function fromLabelSelector(sel: Dict | null | undefined): Selector {
  if (sel === null || sel === undefined) return null
  const reqs: Requirement[] = []
  for (const [key, value] of Object.entries((sel.matchLabels ?? {}) as Record<string, string>)) {
    reqs.push({key, operator: 'In', values: [String(value)]})
  }
  for (const e of (sel.matchExpressions ?? []) as Dict[]) {
    reqs.push({key: String(e.key), operator: e.operator as Operator, values: ((e.values ?? []) as unknown[]).map(String)})
  }
  return reqs
}

export function matchesLabels(selector: Selector, labels: Record<string, string> | undefined): boolean {
  if (selector === null) return false
  const l = labels ?? {}
  return selector.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key)
    switch (r.operator) {
      case 'In':
        return has && r.values.includes(l[r.key])
      case 'NotIn':
        return !has || !r.values.includes(l[r.key])
      case 'Exists':
        return has
      case 'DoesNotExist':
        return !has
      default:
        return false
    }
  })
}

export interface FieldRequirement {
  field: string
  equal: boolean
  value: string
}

/** Field selectors each resource supports (upstream's field label conversion functions). */
const podFields = ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP', 'status.nominatedNodeName', 'spec.hostNetwork']
const supportedFields: Record<string, string[]> = {
  '/pods': podFields,
  '/nodes': ['spec.unschedulable'],
  '/namespaces': ['status.phase'],
  '/events': ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'source', 'type'],
  '/secrets': ['type'],
  'apps/replicasets': ['status.replicas'],
  'batch/jobs': ['status.successful'],
}

export function parseFieldSelector(text: string | undefined, resourceKey: string, custom: boolean): FieldRequirement[] {
  if (!text || text.trim() === '') return []
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...(supportedFields[resourceKey] ?? [])])
  return text.split(',').map((part) => {
    const m = part.trim().match(/^([^=!]+?)\s*(==|=|!=)\s*(.*)$/)
    if (!m) throw errors.badRequest(`invalid selector: '${text}'; can't understand '${part}'`)
    const field = m[1].trim()
    if (!allowed.has(field)) {
      throw errors.badRequest(
        custom ? `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"` : `field label not supported: ${field}`,
      )
    }
    return {field, equal: m[2] !== '!=', value: m[3].trim()}
  })
}

function fieldValue(obj: KubeObject, field: string): string {
  let v: unknown = obj
  for (const part of field.split('.')) v = v && typeof v === 'object' ? (v as Dict)[part] : undefined
  if (v === undefined || v === null) return field === 'spec.unschedulable' || field === 'spec.hostNetwork' ? 'false' : ''
  return String(v)
}

export function matchesFields(reqs: FieldRequirement[], obj: KubeObject): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === r.equal)
}
