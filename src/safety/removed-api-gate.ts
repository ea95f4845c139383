import {PreflightError} from '../errors.js'
import type {KubeClients} from '../kube/client.js'
import type {ReleaseVersion} from '../versions/release-version.js'
import {type RemovedApiFinding, type RemovedApiScan, scanRemovedApis} from './removed-api-scan.js'

export interface RemovedApiGateRequest {
  current: ReleaseVersion
  target: ReleaseVersion
  /** --allow-removed-apis: findings become warnings. */
  allow: boolean
  signal?: AbortSignal
}

export interface RemovedApiGate {
  /** False for a patch upgrade (no minor removes anything within itself). */
  scanned: boolean
  findings: RemovedApiFinding[]
  warnings: string[]
}

/**
 * Before any change of a minor upgrade (every hop at once: the range is the whole way to the
 * target), refuses with exit 3 what the target minors stop serving. Findings already broken at
 * the current version, and sources that could not be read, are warnings.
 */
export async function gateRemovedApis(kube: KubeClients, request: RemovedApiGateRequest): Promise<RemovedApiGate> {
  const {current, target} = request
  if (current.minor >= target.minor) return {scanned: false, findings: [], warnings: []}
  const scan: RemovedApiScan = await scanRemovedApis(kube, {currentMinor: current.minor, targetMinor: target.minor, signal: request.signal})
  const blocking = scan.findings.filter((f) => !f.alreadyRemoved)
  const already = scan.findings.filter((f) => f.alreadyRemoved)
  const warnings = [...scan.warnings]
  const alreadyText = already.length > 0 ? `already not served by ${current.minorLine()}, so not made worse by this upgrade:\n${findingLines(already).join('\n')}` : undefined
  if (alreadyText) warnings.push(alreadyText)
  if (blocking.length > 0 && !request.allow) {
    const also = alreadyText ? `\n  ${alreadyText.replace(/\n/g, '\n  ')}` : ''
    throw new PreflightError(`pre-flight refused the upgrade to ${target.format()}: it uses APIs that ${noLongerServed(blocking)}; nothing was changed:\n${findingLines(blocking).join('\n')}${also}`, {
      hint: 'move these to the version named after "use" (Helm releases: helm mapkubeapis, then upgrade the chart; clients: update them), or pass --allow-removed-apis to upgrade anyway',
    })
  }
  if (blocking.length > 0) warnings.push(`--allow-removed-apis: upgrading although ${noLongerServed(blocking)} these:\n${findingLines(blocking).join('\n')}`)
  return {scanned: true, findings: scan.findings, warnings}
}

/** `Kubernetes 1.25 no longer serves`, `Kubernetes 1.25 and 1.26 no longer serve`. */
function noLongerServed(findings: readonly RemovedApiFinding[]): string {
  const minors = [...new Set(findings.map((f) => f.removedIn))].sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
  const list = minors.length === 1 ? minors[0] : `${minors.slice(0, -1).join(', ')} and ${minors.at(-1)}`
  return `Kubernetes ${list} no longer serve${minors.length === 1 ? 's' : ''}`
}

/** One line per finding, under a heading per Helm release, per namespace, or for clients. */
export function findingLines(findings: readonly RemovedApiFinding[]): string[] {
  const groups = new Map<string, string[]>()
  for (const f of findings) {
    const heading =
      f.source === 'clients'
        ? 'requested by clients (apiserver_requested_deprecated_apis):'
        : f.source === 'helm'
          ? `Helm release ${f.release?.namespace}/${f.release?.name} (revision ${f.release?.revision}):`
          : `last-applied-configuration in ${f.namespace ? `namespace ${f.namespace}` : 'cluster-scoped objects'}:`
    const what = f.source === 'clients' ? `${f.resource} ${f.apiVersion} requested by clients` : `${f.kind} ${f.apiVersion} ${f.namespace ? `${f.namespace}/` : ''}${f.name ?? '?'}`
    groups.set(heading, [...(groups.get(heading) ?? []), `    - ${what}: removed in ${f.removedIn}, use ${f.useInstead}`])
  }
  return [...groups].flatMap(([heading, lines]) => [`  ${heading}`, ...lines])
}
