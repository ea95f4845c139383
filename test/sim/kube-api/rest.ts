/**
 * The apiserver's per-verb semantics on top of the store: defaulting, validation, status
 * subresource rules, the four patch types, server-side apply, dry run, graceful deletion and
 * the eviction subresource. Every method either returns what the response body should be or
 * throws an ApiError carrying the `Status` to send.
 */
import {parse as parseYaml} from 'yaml'
import {deleteObject, type DeleteOptions} from './deletion.js'
import {type ListKeys, recordUpdate, renderPath, serverSideApply} from './managed-fields.js'
import {PatchError, jsonPatch, mergePatch, strategicMergeKeys, strategicMergePatch} from './merge.js'
import {isPodReady, setCondition} from './objects.js'
import {type ResourceType, apiVersionOf, hasStatus, resourceKey} from './resources.js'
import {listKeysFromSchema, validateCustomResource} from './schema.js'
import {fromLabelSelector, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector} from './selectors.js'
import {ApiError, type Status, type StatusCause, errors, successStatus} from './status.js'
import type {ObjectStore} from './store.js'
import {type Dict, type KubeObject, type StoredObject, deepClone, deepEqual, isPlainObject, nowIso} from './types.js'

export interface RequestContext {
  dryRun: boolean
  fieldManager?: string
  fieldValidation: 'Strict' | 'Warn' | 'Ignore'
  force?: boolean
  userAgent: string
  /** Filled in by the handlers: sent back as `Warning: 299 - "…"` headers. */
  warnings: string[]
}

export interface ListQuery {
  labelSelector?: string
  fieldSelector?: string
  limit?: number
  continue?: string
}

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

/** Upstream's default field manager: the user agent up to the first `/`. */
function defaultManager(userAgent: string): string {
  return (userAgent.split('/')[0] || 'unknown').slice(0, 128)
}

/** The order a list comes back in (the store's listIn order): namespace/name. */
function listKey(o: StoredObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`
}

export class Rest {
  constructor(private readonly store: ObjectStore) {}

  private get registry() {
    return this.store.registry
  }

  // ------------------------------------------------------------------ reads

  get(rt: ResourceType, namespace: string | undefined, name: string): StoredObject {
    const o = this.store.getIn(rt, namespace, name)
    if (!o) throw errors.notFound(rt, name)
    return o
  }

  list(rt: ResourceType, namespace: string | undefined, q: ListQuery): Dict {
    const labels = parseLabelSelector(q.labelSelector)
    const fields = parseFieldSelector(q.fieldSelector, resourceKey(rt), !rt.builtin)
    let items = this.store
      .scanIn(rt, namespace)
      .filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o))
      .map((o) => this.store.copyOf(rt, o))
      .sort((a, b) => listKey(a).localeCompare(listKey(b)))
    const meta: Dict = {resourceVersion: String(this.store.resourceVersion)}
    if (q.continue) {
      let after: string
      try {
        after = String((JSON.parse(Buffer.from(q.continue, 'base64url').toString()) as Dict).after)
      } catch {
        throw errors.badRequest('continue key is not valid: illegal base64 data')
      }
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after)
    }
    if (q.limit && q.limit > 0 && items.length > q.limit) {
      const last = items[q.limit - 1]
      meta.continue = Buffer.from(JSON.stringify({after: `${last.metadata.namespace ?? ''}/${last.metadata.name}`})).toString('base64url')
      meta.remainingItemCount = items.length - q.limit
      items = items.slice(0, q.limit)
    }
    // Built-in lists carry kind/apiVersion once, on the list, not on each item (as upstream).
    const shown = rt.builtin ? items.map(({kind: _k, apiVersion: _a, ...rest}) => rest) : items
    return {kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: meta, items: shown}
  }

  // ------------------------------------------------------------------ create

  create(rt: ResourceType, namespace: string | undefined, body: unknown, ctx: RequestContext): StoredObject {
    const obj = this.checkBody(rt, body)
    if (rt.namespaced) {
      if (obj.metadata.namespace && namespace && obj.metadata.namespace !== namespace) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request')
      }
      obj.metadata.namespace = namespace ?? obj.metadata.namespace ?? 'default'
    } else {
      delete obj.metadata.namespace
    }
    for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'managedFields']) delete obj.metadata[k]
    if (rt.resetStatusOnCreate) delete obj.status
    this.applyDefaults(rt, obj)
    this.validate(rt, obj, undefined, ctx)
    this.checkNamespace(rt, obj)
    const now = nowIso()
    obj.metadata.managedFields = recordUpdate(undefined, obj, ctx.fieldManager ?? defaultManager(ctx.userAgent), undefined, this.ownership(rt, now))
    return this.store.createIn(rt, obj, {source: 'api', dryRun: ctx.dryRun})
  }

  // ------------------------------------------------------------------ update / patch

  update(rt: ResourceType, namespace: string | undefined, name: string, subresource: string | undefined, body: unknown, ctx: RequestContext): StoredObject {
    const incoming = this.checkBody(rt, body)
    const existing = this.get(rt, namespace, name)
    if (incoming.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${incoming.metadata.name ?? ''}) does not match the name on the URL (${name})`)
    }
    if (rt.namespaced && incoming.metadata.namespace && incoming.metadata.namespace !== namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request')
    }
    const rv = incoming.metadata.resourceVersion
    if (!rv && rt.requireResourceVersionOnUpdate) {
      throw errors.invalid(rt.kind, rt.group, name, [{reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update'}])
    }
    if (rv && rv !== existing.metadata.resourceVersion) throw errors.staleResourceVersion(rt, name)
    return this.write(rt, existing, incoming, subresource, ctx)
  }

  patch(rt: ResourceType, namespace: string | undefined, name: string, subresource: string | undefined, contentType: string, raw: string, ctx: RequestContext): {code: number; object: StoredObject} {
    if (contentType === PATCH_TYPES.apply) return this.apply(rt, namespace, name, subresource, raw, ctx)
    if (ctx.force !== undefined) {
      throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch', {
        group: 'meta.k8s.io',
        kind: 'PatchOptions',
        causes: [{reason: 'FieldValueForbidden', message: 'Forbidden: may not be specified for non-apply patch', field: 'force'}],
      })
    }
    const accepted: string[] = rt.builtin ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.apply] : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply]
    if (!accepted.includes(contentType)) throw errors.unsupportedMediaType(contentType, accepted)
    let patch: unknown
    try {
      patch = JSON.parse(raw)
    } catch (e) {
      throw errors.badRequest(`error decoding patch: ${(e as Error).message}`)
    }
    const existing = this.get(rt, namespace, name)
    let patched: unknown
    try {
      if (contentType === PATCH_TYPES.json) patched = jsonPatch(existing, patch)
      else if (!isPlainObject(patch)) throw new PatchError(`json: cannot unmarshal ${Array.isArray(patch) ? 'array' : typeof patch} into Go value of type map[string]interface {}`, true)
      else if (contentType === PATCH_TYPES.merge) patched = mergePatch(existing, patch)
      else patched = strategicMergePatch(existing, patch)
    } catch (e) {
      if (e instanceof PatchError) throw e.malformed ? errors.badRequest(e.message) : errors.unprocessable(e.message)
      throw e
    }
    if (!isPlainObject(patched) || !isPlainObject(patched.metadata)) throw errors.badRequest('the patch produced an object without metadata')
    const result = patched as KubeObject
    if (result.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${String(result.metadata.name)}) does not match the name on the URL (${name})`)
    }
    const rv = result.metadata.resourceVersion
    if (rv && rv !== existing.metadata.resourceVersion) throw errors.staleResourceVersion(rt, name)
    return {code: 200, object: this.write(rt, existing, result, subresource, ctx)}
  }

  /** Server-side apply (`application/apply-patch+yaml`): create, or merge with field ownership. */
  private apply(rt: ResourceType, namespace: string | undefined, name: string, subresource: string | undefined, raw: string, ctx: RequestContext): {code: number; object: StoredObject} {
    if (!ctx.fieldManager) {
      throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', {
        group: 'meta.k8s.io',
        kind: 'PatchOptions',
        causes: [{reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager'}],
      })
    }
    let applied: unknown
    try {
      applied = parseYaml(raw)
    } catch (e) {
      throw errors.badRequest(`error decoding YAML: ${(e as Error).message}`)
    }
    if (!isPlainObject(applied)) throw errors.badRequest('error decoding YAML: the applied configuration is not an object')
    if (!applied.apiVersion || !applied.kind) throw errors.badRequest(`invalid object type: ${String(applied.apiVersion ?? '')}, Kind=${String(applied.kind ?? '')}`)
    if (applied.apiVersion !== apiVersionOf(rt) || applied.kind !== rt.kind) {
      throw errors.badRequest(`the API version in the data (${String(applied.apiVersion)}) does not match the expected API version (${apiVersionOf(rt)})`)
    }
    const meta = (applied.metadata ?? {}) as Dict
    if (meta.name !== undefined && meta.name !== name) {
      throw errors.badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`)
    }
    if (rt.namespaced && meta.namespace !== undefined && meta.namespace !== namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request')
    }
    const existing = this.store.getIn(rt, namespace, name)
    if (subresource === 'status') {
      if (!existing) throw errors.notFound(rt, name)
      const next = deepClone(existing)
      next.status = mergePatch(existing.status ?? {}, applied.status ?? {}) as Dict
      return {code: 200, object: this.write(rt, existing, next, 'status', ctx)}
    }
    const now = nowIso()
    const result = serverSideApply(existing, applied, ctx.fieldManager, ctx.force === true, this.ownership(rt, now))
    if (result.conflicts.length > 0) throw this.conflictError(rt, name, result.conflicts)
    const object = result.object as KubeObject
    if (!existing) {
      object.apiVersion = apiVersionOf(rt)
      object.kind = rt.kind
      object.metadata = {...object.metadata, name, ...(rt.namespaced ? {namespace} : {})}
      for (const k of ['ownerReferences', 'finalizers'] as const) if (meta[k] !== undefined) object.metadata[k] = deepClone(meta[k])
      if (rt.resetStatusOnCreate) delete object.status
      this.applyDefaults(rt, object)
      this.validate(rt, object, undefined, ctx)
      this.checkNamespace(rt, object)
      return {code: 201, object: this.store.createIn(rt, object, {source: 'api', dryRun: ctx.dryRun})}
    }
    return {code: 200, object: this.write(rt, existing, object, undefined, ctx, object.metadata.managedFields)}
  }

  private conflictError(rt: ResourceType, name: string, conflicts: Array<{manager: string; path: string}>): ApiError {
    const version = apiVersionOf(rt)
    const lines = conflicts.map((c) => `conflict with "${c.manager}" using ${version}: ${renderPath(c.path)}`)
    const message =
      conflicts.length === 1
        ? `Apply failed with 1 conflict: ${lines[0]}`
        : `Apply failed with ${conflicts.length} conflicts: ${lines.map((l) => `\n- ${l}`).join('')}`
    return new ApiError(409, 'Conflict', message, {
      name,
      ...(rt.group ? {group: rt.group} : {}),
      kind: rt.resource,
      causes: conflicts.map((c) => ({reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${version}`, field: renderPath(c.path)})),
    })
  }

  /**
   * The common tail of update, patch and apply: status subresource rules, server-owned
   * metadata, validation, field ownership, then the store.
   */
  private write(rt: ResourceType, existing: StoredObject, incoming: KubeObject, subresource: string | undefined, ctx: RequestContext, managedFields?: StoredObject['metadata']['managedFields']): StoredObject {
    let next: KubeObject
    if (subresource === 'status') {
      // Through /status only .status changes; spec and metadata stay as they were.
      next = deepClone(existing)
      if (incoming.status === undefined) delete next.status
      else next.status = deepClone(incoming.status)
    } else {
      next = deepClone(incoming)
      next.apiVersion = existing.apiVersion
      next.kind = existing.kind
      next.metadata = {
        ...next.metadata,
        name: existing.metadata.name,
        namespace: existing.metadata.namespace,
        uid: existing.metadata.uid,
        creationTimestamp: existing.metadata.creationTimestamp,
        resourceVersion: existing.metadata.resourceVersion,
        generation: existing.metadata.generation,
        deletionTimestamp: existing.metadata.deletionTimestamp,
        deletionGracePeriodSeconds: existing.metadata.deletionGracePeriodSeconds,
        managedFields: existing.metadata.managedFields,
      }
      for (const k of ['namespace', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields']) if (next.metadata[k] === undefined) delete next.metadata[k]
      // With a status subresource, .status written through the main resource is silently ignored.
      if (hasStatus(rt)) {
        if (existing.status === undefined) delete next.status
        else next.status = deepClone(existing.status)
      }
    }
    this.validate(rt, next, existing, ctx)
    next.metadata.managedFields =
      managedFields ?? recordUpdate(existing, next, ctx.fieldManager ?? defaultManager(ctx.userAgent), subresource, this.ownership(rt, nowIso()))
    if (!next.metadata.managedFields?.length) delete next.metadata.managedFields
    return this.store.updateIn(rt, next, {source: 'api', dryRun: ctx.dryRun})
  }

  // ------------------------------------------------------------------ delete

  delete(rt: ResourceType, namespace: string | undefined, name: string, options: Omit<DeleteOptions, 'source'>): StoredObject {
    return deleteObject(this.store, rt, namespace, name, {...options, source: 'api'})
  }

  deleteCollection(rt: ResourceType, namespace: string | undefined, q: ListQuery, options: Omit<DeleteOptions, 'source'>): Dict {
    const list = this.list(rt, namespace, {labelSelector: q.labelSelector, fieldSelector: q.fieldSelector})
    const items = (list.items as StoredObject[]).map((o) => this.delete(rt, o.metadata.namespace, o.metadata.name, options))
    return {...list, items}
  }

  // ------------------------------------------------------------------ eviction

  /** POST pods/<name>/eviction, following upstream's eviction REST handler rule for rule. */
  evict(namespace: string, name: string, body: unknown, ctx: RequestContext): Status {
    if (!isPlainObject(body)) throw errors.badRequest('the body of an eviction must be a policy/v1 Eviction object')
    if (body.kind !== undefined && body.kind !== 'Eviction') throw errors.badRequest(`the object provided is unrecognized (must be of type Eviction): kind ${String(body.kind)}`)
    // Upstream compares the names as they are: an Eviction without metadata.name is refused too.
    if ((body.metadata as Dict | undefined)?.name !== name) throw errors.badRequest('name in URL does not match name in Eviction object')
    const podsRt = this.registry.resolve('pods')
    const pod = this.get(podsRt, namespace, name)
    const opts = (isPlainObject(body.deleteOptions) ? body.deleteOptions : {}) as Dict
    const deleteOpts: Omit<DeleteOptions, 'source'> = {
      gracePeriodSeconds: typeof opts.gracePeriodSeconds === 'number' ? opts.gracePeriodSeconds : undefined,
      preconditions: opts.preconditions as DeleteOptions['preconditions'],
      dryRun: ctx.dryRun || (Array.isArray(opts.dryRun) && opts.dryRun.includes('All')),
    }
    const evict = (): Status => {
      this.delete(podsRt, namespace, name, deleteOpts)
      return successStatus(201)
    }

    // Pods that are not running (or already going) are not protected by any budget.
    const phase = pod.status?.phase
    if (phase === 'Pending' || phase === 'Succeeded' || phase === 'Failed' || pod.metadata.deletionTimestamp) return evict()

    const pdbRt = this.registry.resolve('poddisruptionbudgets')
    // Here (unlike in the disruption controller) a nil or empty selector matches nothing.
    const pdbs = this.store.listIn(pdbRt, namespace).filter((p) => {
      const selector = fromLabelSelector(p.spec?.selector)
      return selector !== null && selector.length > 0 && matchesLabels(selector, pod.metadata.labels)
    })
    if (pdbs.length === 0) return evict()
    if (pdbs.length > 1) {
      // Upstream returns this Status as the result (no reason), which the handler sends with its code.
      throw new ApiError(500, '', 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.')
    }
    const pdb = pdbs[0]
    const st = (pdb.status ?? {}) as Dict

    if (!isPodReady(pod)) {
      if (pdb.spec?.unhealthyPodEvictionPolicy === 'AlwaysAllow') return evict()
      // Default (IfHealthyBudget): an unready pod may go while the budget is otherwise met.
      if ((st.currentHealthy ?? 0) >= (st.desiredHealthy ?? 0) && (st.desiredHealthy ?? 0) > 0) return evict()
    }

    if ((st.observedGeneration ?? 0) < (pdb.metadata.generation ?? 1)) {
      throw errors.tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10, [
        {reason: 'DisruptionBudget', message: `The disruption budget ${pdb.metadata.name} is still being processed by the server.`},
      ])
    }
    const allowed = Number(st.disruptionsAllowed ?? 0)
    if (allowed < 0) throw errors.forbidden(pdbRt, pdb.metadata.name, 'pdb disruptions allowed is negative')
    if (allowed === 0) {
      throw errors.tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0, [
        {reason: 'DisruptionBudget', message: `The disruption budget ${pdb.metadata.name} needs ${st.desiredHealthy ?? 0} healthy pods and has ${st.currentHealthy ?? 0} currently`},
      ])
    }
    if (!deleteOpts.dryRun) {
      pdb.status = {...st, disruptionsAllowed: allowed - 1, disruptedPods: {...(st.disruptedPods ?? {}), [name]: nowIso()}}
      if (allowed - 1 === 0) setCondition(pdb, {type: 'DisruptionAllowed', status: 'False', reason: 'InsufficientPods', message: ''})
      this.store.updateIn(pdbRt, pdb, {source: 'api'})
    }
    return evict()
  }

  // ------------------------------------------------------------------ helpers

  private checkBody(rt: ResourceType, body: unknown): KubeObject {
    if (!isPlainObject(body)) throw errors.badRequest(`the object provided is unrecognized (must be of type ${rt.kind})`)
    const obj = deepClone(body) as KubeObject
    if (obj.kind !== undefined && obj.kind !== rt.kind) {
      throw errors.badRequest(`the object provided is unrecognized (must be of type ${rt.kind}): kind ${String(obj.kind)} does not match`)
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(rt)) {
      throw errors.badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersionOf(rt)})`)
    }
    obj.apiVersion = apiVersionOf(rt)
    obj.kind = rt.kind
    if (!isPlainObject(obj.metadata)) obj.metadata = {}
    return obj
  }

  private checkNamespace(rt: ResourceType, obj: KubeObject): void {
    if (!rt.namespaced) return
    const nsRt = this.registry.resolve('namespaces')
    const ns = this.store.getIn(nsRt, undefined, obj.metadata.namespace ?? '')
    if (!ns) throw errors.notFound(nsRt, obj.metadata.namespace ?? '')
    if (ns.metadata.deletionTimestamp) {
      throw errors.forbidden(rt, obj.metadata.name ?? '', `unable to create new content in namespace ${ns.metadata.name} because it is being terminated`)
    }
  }

  private ownership(rt: ResourceType, now: string) {
    const keysOf: ListKeys = rt.builtin
      ? (path) => {
          const last = path[path.length - 1]
          const key = last?.startsWith('f:') ? strategicMergeKeys[last.slice(2)] : undefined
          return key ? [key] : undefined
        }
      : (path) => listKeysFromSchema(rt.schema, path)
    return {keysOf, hasStatusSubresource: hasStatus(rt), apiVersion: apiVersionOf(rt), now}
  }

  private applyDefaults(rt: ResourceType, obj: KubeObject): void {
    const kind = `${rt.group}/${rt.resource}`
    const spec = (obj.spec ?? {}) as Dict
    switch (kind) {
      case '/pods':
        spec.restartPolicy ??= 'Always'
        spec.terminationGracePeriodSeconds ??= 30
        spec.dnsPolicy ??= 'ClusterFirst'
        spec.schedulerName ??= 'default-scheduler'
        spec.serviceAccountName ??= 'default'
        spec.tolerations ??= []
        // The DefaultTolerationSeconds admission plugin adds these to every pod.
        for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
          if (!(spec.tolerations as Dict[]).some((t) => t.key === key && t.effect === 'NoExecute')) {
            ;(spec.tolerations as Dict[]).push({key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300})
          }
        }
        obj.status = {phase: 'Pending', qosClass: 'BestEffort'}
        break
      case '/namespaces':
        spec.finalizers ??= ['kubernetes']
        obj.metadata.labels = {...(obj.metadata.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata.name ?? ''}
        obj.status = {phase: 'Active'}
        break
      case 'apps/deployments':
        spec.replicas ??= 1
        spec.strategy ??= {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: '25%', maxSurge: '25%'}}
        spec.revisionHistoryLimit ??= 10
        spec.progressDeadlineSeconds ??= 600
        break
      case 'apps/replicasets':
      case 'apps/statefulsets':
        spec.replicas ??= 1
        break
      case 'apps/daemonsets':
        spec.updateStrategy ??= {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}
        spec.revisionHistoryLimit ??= 10
        break
      default:
        return
    }
    obj.spec = spec
  }

  private validate(rt: ResourceType, obj: KubeObject, old: StoredObject | undefined, ctx: RequestContext): void {
    const name = obj.metadata.name ?? ''
    const causes: StatusCause[] = []
    if (!old) {
      const isNs = rt.group === '' && rt.resource === 'namespaces'
      const pattern = isNs ? dns1123Label : dns1123Subdomain
      if (!obj.metadata.name && !obj.metadata.generateName) {
        causes.push({reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required'})
      } else if (obj.metadata.name && (!pattern.test(name) || name.length > (isNs ? 63 : 253))) {
        causes.push({
          reason: 'FieldValueInvalid',
          field: 'metadata.name',
          message: `Invalid value: "${name}": a lowercase RFC 1123 ${isNs ? 'label' : 'subdomain'} must consist of lower case alphanumeric characters, '-'${isNs ? '' : " or '.'"}, and must start and end with an alphanumeric character`,
        })
      }
    }
    const spec = (obj.spec ?? {}) as Dict
    switch (`${rt.group}/${rt.resource}`) {
      case '/pods':
        if (!Array.isArray(spec.containers) || spec.containers.length === 0) causes.push({reason: 'FieldValueRequired', field: 'spec.containers', message: 'Required value'})
        if (old) this.checkPodUpdate(old, obj, causes)
        break
      case 'policy/poddisruptionbudgets':
        if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
          causes.push({reason: 'FieldValueInvalid', field: 'spec', message: `Invalid value: ${JSON.stringify(spec)}: minAvailable and maxUnavailable cannot be both set`})
        }
        break
      case 'apps/deployments':
      case 'apps/replicasets':
      case 'apps/daemonsets':
      case 'apps/statefulsets': {
        const sel = fromLabelSelector(spec.selector)
        if (!spec.selector) causes.push({reason: 'FieldValueRequired', field: 'spec.selector', message: 'Required value'})
        else if (sel && sel.length === 0) causes.push({reason: 'FieldValueInvalid', field: 'spec.selector', message: 'Invalid value: {}: empty selector is invalid for deployment'})
        else if (!matchesLabels(sel, spec.template?.metadata?.labels)) {
          causes.push({reason: 'FieldValueInvalid', field: 'spec.template.metadata.labels', message: `Invalid value: ${JSON.stringify(spec.template?.metadata?.labels ?? {})}: \`selector\` does not match template \`labels\``})
        }
        if (old && !deepEqual(old.spec?.selector, spec.selector)) causes.push({reason: 'FieldValueInvalid', field: 'spec.selector', message: 'Invalid value: field is immutable'})
        break
      }
      case 'apiextensions.k8s.io/customresourcedefinitions': {
        const want = `${spec.names?.plural}.${spec.group}`
        if (name !== want) causes.push({reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${name}": must be spec.names.plural+"."+spec.group`})
        if (!spec.names?.kind) causes.push({reason: 'FieldValueRequired', field: 'spec.names.kind', message: 'Required value'})
        if (!['Namespaced', 'Cluster'].includes(spec.scope)) causes.push({reason: 'FieldValueNotSupported', field: 'spec.scope', message: `Unsupported value: "${spec.scope ?? ''}": supported values: "Cluster", "Namespaced"`})
        const versions = (spec.versions ?? []) as Dict[]
        if (versions.filter((v) => v.storage === true).length !== 1) causes.push({reason: 'FieldValueInvalid', field: 'spec.versions', message: `Invalid value: ${JSON.stringify(versions.map((v) => v.name))}: must have exactly one version marked as storage version`})
        break
      }
      default:
        break
    }
    if (!rt.builtin) {
      const result = validateCustomResource(obj as Dict, rt.schema)
      causes.push(...result.causes)
      if (result.unknownFields.length > 0) {
        if (ctx.fieldValidation === 'Strict') {
          throw errors.badRequest(`${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: strict decoding error: ${result.unknownFields.map((f) => `unknown field "${f}"`).join(', ')}`)
        }
        if (ctx.fieldValidation === 'Warn') for (const f of result.unknownFields) ctx.warnings.push(`unknown field "${f}"`)
      }
    }
    if (causes.length > 0) throw errors.invalid(rt.kind, rt.group, name, causes)
  }

  /** Upstream allows only a few pod spec fields to change after creation. */
  private checkPodUpdate(old: StoredObject, next: KubeObject, causes: StatusCause[]): void {
    const strip = (spec: Dict | undefined): Dict => {
      const s = deepClone(spec ?? {})
      for (const list of ['containers', 'initContainers'] as const) for (const c of (s[list] ?? []) as Dict[]) delete c.image
      delete s.activeDeadlineSeconds
      delete s.tolerations
      delete s.terminationGracePeriodSeconds
      return s
    }
    if (!deepEqual(strip(old.spec), strip(next.spec))) {
      causes.push({
        reason: 'FieldValueForbidden',
        field: 'spec',
        message:
          'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      })
    }
  }
}

