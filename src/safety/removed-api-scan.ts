import {gunzipSync} from 'node:zlib'
import {parseAllDocuments} from 'yaml'

import type {KubeClients} from '../kube/client.js'
import {apiFailure} from '../kube/api-errors.js'
import {getNonResource} from '../kube/non-resource.js'
import {type RemovedApi, minorOfRelease, removalOf, removalOfResource, removedBetween, splitApiVersion, useInstead} from './removed-apis.js'

export type RemovedApiSource = 'clients' | 'helm' | 'last-applied'

export interface RemovedApiFinding {
  source: RemovedApiSource
  kind: string
  apiVersion: string
  resource: string
  namespace?: string
  name?: string
  /** The Helm release whose manifest names it. */
  release?: {name: string; namespace: string; revision: number}
  removedIn: string
  useInstead: string
  /** Removed at or before the version the cluster runs now: already broken, not made worse by this upgrade. */
  alreadyRemoved: boolean
}

export interface RemovedApiScan {
  findings: RemovedApiFinding[]
  /** Sources that could not be read, and what that leaves unchecked. */
  warnings: string[]
}

export interface ScanRequest {
  currentMinor: number
  targetMinor: number
  signal?: AbortSignal
}

/**
 * What would stop working when the cluster moves from `currentMinor` to `targetMinor`: clients
 * still calling a removed version (the apiserver's own gauge), Helm releases whose stored
 * manifest names one (the next `helm upgrade` fails to read it), and objects whose
 * last-applied-configuration names one (re-applying that manifest fails). One request per
 * source or resource type; a source the credentials may not read is a warning, not a failure.
 */
export async function scanRemovedApis(kube: KubeClients, request: ScanRequest): Promise<RemovedApiScan> {
  const warnings: string[] = []
  const settle = async (read: () => Promise<RemovedApiFinding[]>, unreadable: (error: unknown) => string): Promise<RemovedApiFinding[]> => {
    try {
      return await read()
    } catch (error) {
      warnings.push(unreadable(error))
      return []
    }
  }
  const groups = await Promise.all([
    settle(() => fromRequestedMetric(kube, request), (e) => `${why(e)} reading /metrics: clients' calls to removed APIs were not checked (the user needs get on the non-resource URL /metrics)`),
    settle(() => fromHelmReleases(kube, request), (e) => `${why(e)} listing Secrets in all namespaces: Helm releases were not checked (the user needs list on secrets cluster-wide)`),
    fromLastApplied(kube, request, warnings),
  ])
  return {findings: groups.flat(), warnings}
}

function why(error: unknown): string {
  const failure = apiFailure(error)
  return failure.code === 403 ? 'forbidden (403)' : failure.code ? `HTTP ${failure.code}` : failure.message
}

function finding(source: RemovedApiSource, api: RemovedApi, currentMinor: number, where: Partial<Pick<RemovedApiFinding, 'namespace' | 'name' | 'release'>> = {}): RemovedApiFinding {
  return {
    source,
    kind: api.kind,
    apiVersion: api.group ? `${api.group}/${api.version}` : api.version,
    resource: api.resource,
    ...where,
    removedIn: api.removedIn,
    useInstead: useInstead(api),
    alreadyRemoved: minorOfRelease(api.removedIn) <= currentMinor,
  }
}

// ---------------------------------------------------------------- (a) the apiserver's gauge

/** `name{a="x",b="y"} 1` lines of the Prometheus text format. */
function* samples(text: string, metric: string): Generator<{labels: Record<string, string>; value: number}> {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue
    const close = line.lastIndexOf('}')
    const labels: Record<string, string> = {}
    for (const match of line.slice(metric.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1]] = match[2].replace(/\\(.)/g, '$1')
    yield {labels, value: Number(line.slice(close + 1).trim().split(/\s+/)[0])}
  }
}

async function fromRequestedMetric(kube: KubeClients, {currentMinor, targetMinor, signal}: ScanRequest): Promise<RemovedApiFinding[]> {
  const answer = await getNonResource(kube, '/metrics', {signal})
  if (answer.status !== 200) throw Object.assign(new Error(`HTTP ${answer.status}`), {code: answer.status})
  const found: RemovedApiFinding[] = []
  for (const {labels, value} of samples(answer.body, 'apiserver_requested_deprecated_apis')) {
    const removed = minorOfRelease(labels.removed_release ?? '')
    if (value !== 1 || !(removed > currentMinor && removed <= targetMinor)) continue
    const known = removalOfResource(labels.group ?? '', labels.version ?? '', labels.resource ?? '')
    const api: RemovedApi = known ?? {group: labels.group ?? '', version: labels.version ?? '', resource: labels.resource ?? '', kind: labels.resource ?? '', removedIn: labels.removed_release}
    found.push(finding('clients', {...api, removedIn: labels.removed_release}, currentMinor))
  }
  return found
}

// ---------------------------------------------------------------- (b) Helm 3 release Secrets

interface HelmRelease {
  name?: string
  namespace?: string
  version?: number
  manifest?: string
}

/** `data.release`: base64 (the Secret's) of base64 of gzip of JSON (Helm's; older Helm 3 did not gzip). */
export function decodeHelmRelease(data: string): HelmRelease {
  const helmText = Buffer.from(data, 'base64').toString('utf8')
  const bytes = Buffer.from(helmText, 'base64')
  const json = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes).toString('utf8') : bytes.toString('utf8')
  return JSON.parse(json) as HelmRelease
}

async function fromHelmReleases(kube: KubeClients, {currentMinor, targetMinor}: ScanRequest): Promise<RemovedApiFinding[]> {
  const found: RemovedApiFinding[] = []
  for (const secret of await listAll((_continue) => kube.core.listSecretForAllNamespaces({labelSelector: 'owner=helm,status=deployed', limit: 200, _continue}))) {
    const data = secret.data?.release
    if (!data) continue
    let release: HelmRelease
    try {
      release = decodeHelmRelease(data)
    } catch {
      continue
    }
    const releaseRef = {name: release.name ?? secret.metadata?.labels?.name ?? '?', namespace: release.namespace ?? secret.metadata?.namespace ?? '?', revision: release.version ?? Number(secret.metadata?.labels?.version)}
    for (const doc of parseAllDocuments(release.manifest ?? '')) {
      const object = (Array.isArray(doc) ? undefined : doc.toJS()) as {apiVersion?: unknown; kind?: unknown; metadata?: {name?: string; namespace?: string}} | null | undefined
      if (!object || typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') continue
      const api = removalOf(object.apiVersion, object.kind)
      if (!api || minorOfRelease(api.removedIn) > targetMinor) continue
      found.push(finding('helm', api, currentMinor, {namespace: object.metadata?.namespace ?? releaseRef.namespace, name: object.metadata?.name, release: releaseRef}))
    }
  }
  return found
}

// ---------------------------------------------------------------- (c) last-applied-configuration

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'

interface Listed {
  metadata?: {name?: string; namespace?: string; annotations?: Record<string, string>}
}

/** One list per resource type that the range removes a version of, read where the cluster still serves it. */
async function fromLastApplied(kube: KubeClients, {currentMinor, targetMinor}: ScanRequest, warnings: string[]): Promise<RemovedApiFinding[]> {
  const byListing = new Map<string, RemovedApi[]>()
  for (const api of removedBetween(currentMinor, targetMinor)) {
    if (!api.listAs) continue
    const key = `${api.listAs} ${api.resource}`
    byListing.set(key, [...(byListing.get(key) ?? []), api])
  }
  const lists = await Promise.all(
    [...byListing].map(async ([key, apis]) => {
      const [listAs, resource] = key.split(' ')
      const [group, version] = splitApiVersion(listAs)
      try {
        const items = await listAll<Listed>(async (_continue) => (await kube.customObjects.listClusterCustomObject({group, version, plural: resource, limit: 500, _continue})) as {items?: Listed[]; metadata?: {_continue?: string; continue?: string}})
        return items.flatMap((item) => {
          const api = appliedRemoval(item, apis)
          return api ? [finding('last-applied', api, currentMinor, {namespace: item.metadata?.namespace, name: item.metadata?.name})] : []
        })
      } catch (error) {
        // Not served here means there is nothing of that kind to re-apply.
        if (apiFailure(error).code === 404) return []
        warnings.push(`${why(error)} listing ${resource}.${group}: their last-applied configurations were not checked`)
        return []
      }
    }),
  )
  return lists.flat()
}

function appliedRemoval(item: Listed, apis: readonly RemovedApi[]): RemovedApi | undefined {
  const text = item.metadata?.annotations?.[LAST_APPLIED]
  if (!text) return undefined
  try {
    const applied = JSON.parse(text) as {apiVersion?: string; kind?: string}
    return apis.find((api) => applied.apiVersion === (api.group ? `${api.group}/${api.version}` : api.version) && applied.kind === api.kind)
  } catch {
    return undefined
  }
}

/** Every page of a list: a large cluster's Secrets do not come in one answer. */
async function listAll<T>(page: (token: string | undefined) => Promise<{items?: T[]; metadata?: {_continue?: string; continue?: string}}>): Promise<T[]> {
  const items: T[] = []
  let token: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const answer = await page(token)
    items.push(...(answer.items ?? []))
    token = answer.metadata?._continue ?? answer.metadata?.continue
    if (!token) break
  }
  return items
}
