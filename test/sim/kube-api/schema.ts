/**
 * Structural-schema handling of custom resources as the apiextensions apiserver does it:
 * unknown fields are pruned (and reported, for the `Warning` header or `fieldValidation=Strict`),
 * nulls in non-nullable fields are dropped, defaults are filled in, then types, `required`,
 * `enum`, bounds and patterns are checked. Messages follow upstream's wording.
 */
import type {StatusCause} from './status.js'
import {type Dict, isPlainObject} from './types.js'

export interface SchemaResult {
  causes: StatusCause[]
  /** Paths of pruned fields: `spec.upgrade.env`. */
  unknownFields: string[]
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number'
  return typeof v
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)
}

function typeMatches(schema: Dict, v: unknown): boolean {
  if (schema['x-kubernetes-int-or-string']) return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v))
  switch (schema.type) {
    case undefined:
      return true
    case 'object':
      return isPlainObject(v)
    case 'array':
      return Array.isArray(v)
    case 'string':
      return typeof v === 'string'
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v)
    case 'number':
      return typeof v === 'number'
    case 'boolean':
      return typeof v === 'boolean'
    default:
      return true
  }
}

/** Walks `value` against `schema`, pruning in place. Returns the (possibly replaced) value. */
function walk(value: unknown, schema: Dict, path: string, out: SchemaResult): unknown {
  const at = path || '<root>'
  if (Array.isArray(schema.anyOf) && schema.type === undefined && !schema['x-kubernetes-int-or-string']) {
    const types = (schema.anyOf as Dict[]).map((s) => s.type).filter(Boolean)
    if (types.length > 0 && !types.some((t) => typeMatches({type: t}, value))) {
      out.causes.push({reason: 'FieldValueTypeInvalid', field: at, message: `Invalid value: ${show(typeName(value))}: ${at} in body must be of type ${types.join(' or ')}: ${show(typeName(value))}`})
    }
    return value
  }
  if (!typeMatches(schema, value)) {
    out.causes.push({
      reason: 'FieldValueTypeInvalid',
      field: at,
      message: `Invalid value: ${show(typeName(value))}: ${at} in body must be of type ${schema['x-kubernetes-int-or-string'] ? 'integer or string' : schema.type}: ${show(typeName(value))}`,
    })
    return value
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e: unknown) => e === value)) {
    out.causes.push({reason: 'FieldValueNotSupported', field: at, message: `Unsupported value: ${show(value)}: supported values: ${(schema.enum as unknown[]).map(show).join(', ')}`})
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)) {
      out.causes.push({reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${value}: ${at} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`})
    }
    if (typeof schema.maximum === 'number' && (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)) {
      out.causes.push({reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${value}: ${at} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`})
    }
  }
  if (typeof value === 'string') {
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) {
      out.causes.push({reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${show(value)}: ${at} in body should match '${schema.pattern}'`})
    }
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) {
      out.causes.push({reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${show(value)}: ${at} in body should be at least ${schema.minLength} chars long`})
    }
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) {
      out.causes.push({reason: 'FieldValueTooLong', field: at, message: `Too long: may not be longer than ${schema.maxLength}`})
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) {
      out.causes.push({reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${value.length}: ${at} in body should have at least ${schema.minItems} items`})
    }
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) {
      out.causes.push({reason: 'FieldValueTooMany', field: at, message: `Too many: ${value.length}: must have at most ${schema.maxItems} items`})
    }
    if (isPlainObject(schema.items)) {
      for (let i = 0; i < value.length; i++) value[i] = walk(value[i], schema.items, `${path}[${i}]`, out)
    }
    return value
  }
  if (isPlainObject(value)) return walkObject(value, schema, path, out)
  return value
}

function walkObject(value: Dict, schema: Dict, path: string, out: SchemaResult): Dict {
  const props = (schema.properties ?? {}) as Dict
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true
  const additional = schema.additionalProperties
  const join = (k: string): string => (path ? `${path}.${k}` : k)
  // Defaults first (upstream defaults before validating), then prune, then check.
  for (const [k, sub] of Object.entries(props)) {
    if (value[k] === undefined && isPlainObject(sub) && sub.default !== undefined) value[k] = structuredClone(sub.default)
  }
  for (const k of Object.keys(value)) {
    const sub = props[k] as Dict | undefined
    if (value[k] === null && !(sub?.nullable === true)) {
      delete value[k]
      continue
    }
    if (path === '' && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue
    if (sub) value[k] = walk(value[k], sub, join(k), out)
    else if (isPlainObject(additional)) value[k] = walk(value[k], additional, join(k), out)
    else if (additional === true || preserve) continue
    else {
      out.unknownFields.push(join(k))
      delete value[k]
    }
  }
  for (const req of (schema.required ?? []) as string[]) {
    if (value[req] === undefined) out.causes.push({reason: 'FieldValueRequired', field: join(req), message: 'Required value'})
  }
  return value
}

/** Prunes, defaults and validates `obj` (a custom resource) in place against `schema`. */
export function validateCustomResource(obj: Dict, schema: Dict | undefined): SchemaResult {
  const out: SchemaResult = {causes: [], unknownFields: []}
  if (!schema) return out
  walkObject(obj, schema, '', out)
  return out
}

/** Merge keys of the list at a fieldsV1-style path, from `x-kubernetes-list-map-keys`. */
export function listKeysFromSchema(schema: Dict | undefined, path: string[]): string[] | undefined {
  let node: Dict | undefined = schema
  for (const seg of path) {
    if (!node) return undefined
    if (seg.startsWith('f:')) {
      const name = seg.slice(2)
      node = (node.properties?.[name] ?? (isPlainObject(node.additionalProperties) ? node.additionalProperties : undefined)) as Dict | undefined
    } else {
      node = node.items as Dict | undefined
    }
  }
  if (node?.['x-kubernetes-list-type'] === 'map' && Array.isArray(node['x-kubernetes-list-map-keys'])) return node['x-kubernetes-list-map-keys'] as string[]
  return undefined
}
