/**
 * Puts Plans (and, when asked, the controller itself) into the cluster by server-side apply
 * with field manager `homelab`: running it again changes nothing, and a field someone else
 * set with kubectl is a conflict we report instead of silently overwriting. Before that, the
 * read-only check that the controller is there at all, because Plans in a cluster without
 * the controller are accepted and then nothing ever happens.
 */
import {readFile} from 'node:fs/promises'

import type {KubernetesObject, V1Deployment} from '@kubernetes/client-node'
import {parseAllDocuments} from 'yaml'

import {formatDuration} from '../duration.js'
import {AbortedError, ConnectionError, HomelabError, PreflightError, UsageError} from '../errors.js'
import {apiFailure, isNotFound} from '../kube/api-errors.js'
import {ApiextensionsV1Api, PatchStrategy} from '../bundled/kubernetes-client.js'
import type {KubeClients} from '../kube/client.js'
import {waitFor} from '../kube/wait.js'
import {CONTROLLER_DEPLOYMENT, DEFAULT_NAMESPACE, DEFAULT_SERVICE_ACCOUNT, type Plan, PLAN_CRD_NAME} from './types.js'

export const FIELD_MANAGER = 'homelab'

/** The controller's release assets; `latest` follows GitHub's redirect to the newest release. */
export const CONTROLLER_RELEASE_URL = 'https://github.com/rancher/system-upgrade-controller/releases/latest/download'
export const DEFAULT_CONTROLLER_MANIFESTS = [`${CONTROLLER_RELEASE_URL}/crd.yaml`, `${CONTROLLER_RELEASE_URL}/system-upgrade-controller.yaml`]

export interface ControllerState {
  namespace: string
  crd: boolean
  namespaceExists: boolean
  serviceAccount: boolean
  /** undefined: no Deployment of the usual name (it may be installed under another). */
  deployment?: {available: boolean}
}

/** What is there of the controller; reads only. */
export async function inspectController(kube: KubeClients, namespace = DEFAULT_NAMESPACE, serviceAccount = DEFAULT_SERVICE_ACCOUNT): Promise<ControllerState> {
  const extensions = kube.kubeConfig.makeApiClient(ApiextensionsV1Api)
  const exists = async (read: () => Promise<unknown>): Promise<boolean> => {
    try {
      await read()
      return true
    } catch (error) {
      if (isNotFound(error)) return false
      throw unreachable(kube, error)
    }
  }
  const [crd, namespaceExists, sa] = await Promise.all([
    exists(() => extensions.readCustomResourceDefinition({name: PLAN_CRD_NAME})),
    exists(() => kube.core.readNamespace({name: namespace})),
    exists(() => kube.core.readNamespacedServiceAccount({name: serviceAccount, namespace})),
  ])
  let deployment: ControllerState['deployment']
  try {
    deployment = {available: isAvailable(await kube.apps.readNamespacedDeployment({name: CONTROLLER_DEPLOYMENT, namespace}))}
  } catch (error) {
    if (!isNotFound(error)) throw unreachable(kube, error)
  }
  return {namespace, crd, namespaceExists, serviceAccount: sa, deployment}
}

function installHint(namespace: string): string {
  return (
    `install the controller with \`homelab k8s plan apply --install-controller\`${namespace === DEFAULT_NAMESPACE ? '' : ` --namespace ${namespace}`} ` +
    `(or kubectl apply -f ${DEFAULT_CONTROLLER_MANIFESTS.join(' -f ')})`
  )
}

/** Refuses (exit 3) when the CRD, the namespace or the ServiceAccount is missing; warns about the rest. */
export function requireController(state: ControllerState, serviceAccount = DEFAULT_SERVICE_ACCOUNT): string[] {
  const missing: string[] = []
  if (!state.crd) missing.push(`the CustomResourceDefinition ${PLAN_CRD_NAME}`)
  if (!state.namespaceExists) missing.push(`the namespace ${state.namespace}`)
  if (!state.serviceAccount) missing.push(`the ServiceAccount ${state.namespace}/${serviceAccount}`)
  if (missing.length > 0) {
    throw new PreflightError(`the system-upgrade-controller is not installed: missing ${missing.join(', ')}`, {hint: installHint(state.namespace)})
  }
  const warnings: string[] = []
  if (!state.deployment) {
    warnings.push(`no Deployment ${state.namespace}/${CONTROLLER_DEPLOYMENT}: unless the controller runs under another name, the plans will wait for it`)
  } else if (!state.deployment.available) {
    warnings.push(`the Deployment ${state.namespace}/${CONTROLLER_DEPLOYMENT} is not available: the plans wait until the controller runs (kubectl -n ${state.namespace} describe deployment ${CONTROLLER_DEPLOYMENT})`)
  }
  return warnings
}

export type ApplyAction = 'created' | 'configured' | 'unchanged' | 'unchecked'

export interface AppliedObject {
  apiVersion: string
  kind: string
  name: string
  namespace?: string
  action: ApplyAction
  dryRun: boolean
  /** Why the server was not asked (dry run of an object whose namespace or CRD this run creates). */
  note?: string
}

export interface ApplyOptions {
  /** Server-side dry run (`dryRun=All`): every check of the API server, nothing stored. */
  dryRun?: boolean
  /** Take over fields another manager owns (kubectl's --force-conflicts). */
  forceConflicts?: boolean
  signal?: AbortSignal
}

type Obj = KubernetesObject & {metadata: {name: string; namespace?: string}}

const describe = (o: {kind?: string; metadata?: {name?: string; namespace?: string}}) =>
  `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`

// What we send is what we mean to own: never server-set fields, which apply refuses or would claim.
function applyBody<T extends Obj>(object: T): T {
  const body = structuredClone(object) as T & {status?: unknown}
  delete body.status
  const meta = body.metadata as unknown as Record<string, unknown>
  for (const key of ['resourceVersion', 'uid', 'generation', 'creationTimestamp', 'managedFields', 'selfLink']) delete meta[key]
  return body
}

// Equal but for the bookkeeping the server changes on every write.
function sameContent(a: KubernetesObject, b: KubernetesObject): boolean {
  const strip = (o: KubernetesObject) => {
    const c = structuredClone(o) as Record<string, unknown> & {metadata?: Record<string, unknown>}
    delete c.status
    if (c.metadata) for (const key of ['resourceVersion', 'managedFields', 'generation', 'creationTimestamp', 'uid']) delete c.metadata[key]
    return JSON.stringify(c, Object.keys(flatten(c)).sort())
  }
  return strip(a) === strip(b)
}

function flatten(value: unknown, out: Record<string, true> = {}): Record<string, true> {
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out[k] = true
      flatten(v, out)
    }
  }
  return out
}

/** Server-side applies each object in order. Conflicts and refusals name the object and the fix. */
export async function serverSideApply(kube: KubeClients, objects: readonly Obj[], options: ApplyOptions = {}): Promise<AppliedObject[]> {
  const results: AppliedObject[] = []
  const dryRun = options.dryRun === true
  // In a dry run nothing is created, so objects inside a namespace or of a kind this run would
  // create cannot be checked by the server yet.
  const pendingNamespaces = new Set<string>()
  const pendingKinds = new Set<string>()
  for (const object of objects) {
    if (options.signal?.aborted) throw new AbortedError(`cancelled before applying ${describe(object)}`)
    const base = {apiVersion: object.apiVersion ?? 'v1', kind: object.kind ?? '', name: object.metadata.name, namespace: object.metadata.namespace, dryRun}
    if (dryRun && ((object.metadata.namespace && pendingNamespaces.has(object.metadata.namespace)) || pendingKinds.has(`${base.apiVersion}/${base.kind}`))) {
      results.push({...base, action: 'unchecked', note: 'its namespace or CustomResourceDefinition is created by this run'})
      continue
    }
    let before: KubernetesObject | undefined
    try {
      before = await kube.objects.read({apiVersion: base.apiVersion, kind: base.kind, metadata: {name: base.name, namespace: base.namespace}})
    } catch (error) {
      if (!isNotFound(error) && !isUnknownKind(error)) throw applyFailure(kube, object, error)
    }
    let after: KubernetesObject
    try {
      after = await kube.objects.patch(applyBody(object), undefined, dryRun ? 'All' : undefined, FIELD_MANAGER, options.forceConflicts === true, PatchStrategy.ServerSideApply)
    } catch (error) {
      throw applyFailure(kube, object, error)
    }
    const action: ApplyAction = before === undefined ? 'created' : sameContent(before, after) ? 'unchanged' : 'configured'
    results.push({...base, action})
    if (dryRun && before === undefined) {
      if (base.kind === 'Namespace') pendingNamespaces.add(base.name)
      if (base.kind === 'CustomResourceDefinition') {
        const spec = (object as {spec?: {group?: string; names?: {kind?: string}; versions?: Array<{name?: string}>}}).spec
        for (const v of spec?.versions ?? []) pendingKinds.add(`${spec?.group}/${v.name}/${spec?.names?.kind}`)
      }
    }
  }
  return results
}

function isUnknownKind(error: unknown): boolean {
  return error instanceof Error && /Unrecognized API version and kind|Failed to fetch resource metadata/.test(error.message) && (isNotFound(error) || /404|Unrecognized/.test(error.message))
}

function unreachable(kube: KubeClients, error: unknown): HomelabError {
  const failure = apiFailure(error)
  if (failure.code === 401 || failure.code === 403) {
    return new HomelabError(`the API server at ${kube.server} refused us (${failure.code}): ${failure.message}`, {
      cause: error,
      hint: 'use a kubeconfig with cluster-admin rights (k3s: /etc/rancher/k3s/k3s.yaml on a server)',
    })
  }
  if (failure.code === undefined) {
    return new ConnectionError(`cannot reach the API server at ${kube.server}: ${failure.message}`, {
      cause: error,
      hint: 'check the kubeconfig (--kubeconfig, --context) and that the cluster is up',
    })
  }
  return new HomelabError(`the API server at ${kube.server} answered ${failure.code}: ${failure.message}`, {cause: error})
}

function applyFailure(kube: KubeClients, object: Obj, error: unknown): HomelabError {
  if (error instanceof HomelabError) return error
  const failure = apiFailure(error)
  const what = describe(object)
  if (failure.code === 409) {
    return new HomelabError(`applying ${what} conflicts with another field manager: ${failure.message}`, {
      cause: error,
      hint: 'someone changed these fields with another tool (kubectl edit?); pass --force-conflicts to take them over, or change them back',
    })
  }
  if (failure.code === 422 || failure.code === 400) {
    return new HomelabError(`the API server refused ${what}: ${failure.message}`, {cause: error, hint: 'fix the fields it names'})
  }
  if (isUnknownKind(error)) {
    return new PreflightError(`the API server does not serve ${object.apiVersion} ${object.kind} (needed for ${what})`, {
      cause: error,
      hint: object.kind === 'Plan' ? installHint(object.metadata.namespace ?? DEFAULT_NAMESPACE) : 'install the CustomResourceDefinition that defines it first',
    })
  }
  if (failure.code === 404 && /namespaces? "[^"]+" not found/.test(failure.message)) {
    return new PreflightError(`cannot apply ${what}: ${failure.message}`, {cause: error, hint: installHint(object.metadata.namespace ?? DEFAULT_NAMESPACE)})
  }
  return unreachable(kube, error)
}

/** Applies the Plans after checking the controller is installed. Returns what changed and the warnings. */
export async function applyPlans(
  kube: KubeClients,
  plans: readonly Plan[],
  options: ApplyOptions & {namespace?: string; serviceAccount?: string; skipControllerCheck?: boolean} = {},
): Promise<{applied: AppliedObject[]; warnings: string[]}> {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE
  for (const plan of plans) {
    if ((plan.metadata.namespace ?? namespace) !== namespace) {
      throw new UsageError(`plan ${plan.metadata.name} is in namespace ${plan.metadata.namespace}, but the controller runs in ${namespace}`, {
        hint: `Plans must live in the controller's namespace: pass --namespace ${plan.metadata.namespace}, or change the plan's namespace`,
      })
    }
  }
  const warnings = options.skipControllerCheck ? [] : requireController(await inspectController(kube, namespace, options.serviceAccount), options.serviceAccount)
  const objects = plans.map((plan) => ({...plan, metadata: {...plan.metadata, namespace}}) as Obj)
  return {applied: await serverSideApply(kube, objects, options), warnings}
}

export interface ManifestSource {
  fetch?: typeof globalThis.fetch
  signal?: AbortSignal
  /** Bound for each download. */
  timeoutMs?: number
}

/**
 * Reads the controller's manifests: each source is an http(s) URL or a file. Returns the
 * objects in the order to apply them: CustomResourceDefinitions, then Namespaces, then the rest
 * as written.
 */
export async function loadManifests(sources: readonly string[], options: ManifestSource = {}): Promise<Obj[]> {
  const objects: Obj[] = []
  for (const source of sources) {
    const text = /^https?:\/\//.test(source) ? await download(source, options) : await readLocal(source)
    const docs = parseAllDocuments(text)
    const list = Array.isArray(docs) ? docs : []
    list.forEach((doc, index) => {
      if (doc.errors.length > 0) {
        throw new UsageError(`${source} document ${index + 1} is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`, {hint: 'pass the controller\'s release manifests (crd.yaml, system-upgrade-controller.yaml)'})
      }
      const value = doc.toJS() as Partial<Obj> | null
      if (value === null || value === undefined) return
      if (typeof value !== 'object' || !value.apiVersion || !value.kind || !value.metadata?.name) {
        throw new UsageError(`${source} document ${index + 1} is not a Kubernetes object (apiVersion, kind, metadata.name)`, {hint: 'pass the controller\'s release manifests (crd.yaml, system-upgrade-controller.yaml)'})
      }
      objects.push(value as Obj)
    })
  }
  if (objects.length === 0) throw new UsageError(`the controller manifests (${sources.join(', ')}) hold no objects`, {hint: 'pass the controller\'s release manifests (crd.yaml, system-upgrade-controller.yaml)'})
  const rank = (o: Obj) => (o.kind === 'CustomResourceDefinition' ? 0 : o.kind === 'Namespace' ? 1 : 2)
  return objects.map((o, i) => ({o, i})).sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i).map(({o}) => o)
}

async function readLocal(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read the controller manifest ${path}: ${(error as Error).message}`, {cause: error, hint: 'pass an existing file or an http(s) URL to --controller-manifest'})
  }
}

async function download(url: string, options: ManifestSource): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  let response: Response
  try {
    response = await (options.fetch ?? globalThis.fetch)(url, {signal, redirect: 'follow'})
  } catch (error) {
    if (options.signal?.aborted) throw new AbortedError(`cancelled while downloading ${url}`, {cause: error})
    const why = timeout.aborted ? `no answer within ${formatDuration(timeoutMs)}` : (error as Error).message
    throw new ConnectionError(`cannot download the controller manifest ${url}: ${why}`, {
      cause: error,
      hint: 'check the network, or download the release assets yourself and pass them with --controller-manifest FILE',
    })
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined)
    throw new ConnectionError(`downloading the controller manifest ${url} answered ${response.status} ${response.statusText}`, {
      hint: 'check the URL, or pass the release assets with --controller-manifest FILE',
    })
  }
  return response.text()
}

function isAvailable(deployment: V1Deployment): boolean {
  const available = deployment.status?.conditions?.find((c) => c.type === 'Available')
  if (available) return available.status === 'True'
  return (deployment.status?.availableReplicas ?? 0) > 0
}

export interface InstallOptions extends ApplyOptions {
  /** Bound for the CRDs to be served and the Deployments to become available. */
  timeoutMs: number
  onProgress?: (message: string) => void
}

/**
 * Applies the controller's manifests, waits until its CRDs are served and its Deployments are
 * available. A dry run only asks the server to check the objects.
 */
export async function installController(kube: KubeClients, objects: readonly Obj[], options: InstallOptions): Promise<AppliedObject[]> {
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition')
  const rest = objects.filter((o) => o.kind !== 'CustomResourceDefinition')
  options.onProgress?.(`applying ${objects.length} objects of the system-upgrade-controller`)
  const applied = await serverSideApply(kube, crds, options)
  if (!options.dryRun && crds.length > 0) {
    const extensions = kube.kubeConfig.makeApiClient(ApiextensionsV1Api)
    const names = new Set(crds.map((c) => c.metadata.name))
    options.onProgress?.(`waiting for ${[...names].join(', ')} to be established`)
    await waitFor({
      kube,
      path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      list: () => extensions.listCustomResourceDefinition(),
      check: (found) => {
        const established = [...found.values()].filter(
          (crd) => names.has(crd.metadata?.name ?? '') && crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'),
        )
        return established.length === names.size ? true : undefined
      },
      timeoutMs: options.timeoutMs,
      description: `the CustomResourceDefinitions ${[...names].join(', ')} to be established`,
      hint: 'check the API server\'s log; kubectl get crd shows their conditions',
      signal: options.signal,
    })
  }
  applied.push(...(await serverSideApply(kube, rest, options)))
  if (options.dryRun) return applied

  for (const deployment of rest.filter((o) => o.kind === 'Deployment' && o.apiVersion === 'apps/v1')) {
    const namespace = deployment.metadata.namespace ?? 'default'
    const name = deployment.metadata.name
    options.onProgress?.(`waiting for the Deployment ${namespace}/${name} to be available`)
    await waitFor({
      kube,
      path: `/apis/apps/v1/namespaces/${namespace}/deployments`,
      list: () => kube.apps.listNamespacedDeployment({namespace}),
      check: (found) => {
        const current = found.get(`${namespace}/${name}`)
        return current && isAvailable(current) ? true : undefined
      },
      timeoutMs: options.timeoutMs,
      description: `the Deployment ${namespace}/${name} to be available`,
      hint: `look at its pods: kubectl -n ${namespace} describe deployment ${name}`,
      signal: options.signal,
    })
  }
  return applied
}
