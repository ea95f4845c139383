import {VersionError} from '../errors.js'
import {compareVersions, ReleaseVersion, parseVersion, type Distribution} from './release-version.js'

/**
 * What moving one node from `from` to `to` means under the Kubernetes skew rules:
 * - same: nothing to do;
 * - patch: same minor, newer (incl. `+k3s1` → `+k3s2`);
 * - minor: the next minor, the only minor step allowed at once;
 * - skip: more than one minor ahead, so it needs hops through each minor in between;
 * - downgrade: older (incl. `+k3s2` → `+k3s1`) or another major; control planes cannot go back.
 */
export type UpgradeKind = 'same' | 'patch' | 'minor' | 'skip' | 'downgrade'

export function classifyUpgrade(from: ReleaseVersion | string, to: ReleaseVersion | string): UpgradeKind {
  const a = typeof from === 'string' ? parseVersion(from, typeof to === 'string' ? undefined : to.distribution) : from
  const b = typeof to === 'string' ? parseVersion(to, a.distribution) : to
  const order = compareVersions(a, b)
  if (order === 0) return 'same'
  if (order > 0 || a.major !== b.major) return 'downgrade'
  const minors = b.minor - a.minor
  if (minors === 0) return 'patch'
  return minors === 1 ? 'minor' : 'skip'
}

/** Finds the newest release of a minor line, e.g. through the channel named after it (`v1.31`). */
export type LatestOfMinor = (minorLine: string) => Promise<ReleaseVersion | string>

/**
 * The versions a cluster at `from` passes through to reach `target`, one minor at a time:
 * v1.29.x → newest v1.30 → newest v1.31 → v1.32.y. Ends with `target`; empty when `from`
 * already is the target. A downgrade throws.
 */
export async function planHops(
  from: ReleaseVersion | string,
  target: ReleaseVersion | string,
  latestOfMinor: LatestOfMinor,
): Promise<ReleaseVersion[]> {
  const start = typeof from === 'string' ? parseVersion(from, typeof target === 'string' ? undefined : target.distribution) : from
  const end = typeof target === 'string' ? parseVersion(target, start.distribution) : target
  const kind = classifyUpgrade(start, end)
  if (kind === 'downgrade') {
    throw new VersionError(`cannot go from ${start.format()} to ${end.format()}: that is a downgrade`, {
      hint: `${start.distribution} does not support downgrading; pick a target of ${start.format()} or newer (restore a backup to go back)`,
    })
  }
  if (kind === 'same') return []
  if (kind !== 'skip') return [end]

  const hops: ReleaseVersion[] = []
  for (let minor = start.minor + 1; minor < end.minor; minor++) {
    const line = `v${start.major}.${minor}`
    const found = await latestOfMinor(line)
    const hop = typeof found === 'string' ? parseVersion(found, start.distribution) : found
    if (hop.major !== start.major || hop.minor !== minor || hop.distribution !== start.distribution) {
      throw new VersionError(`the newest release of ${line} was reported as ${hop.format()}, which is not a ${start.distribution} ${line} release`, {
        hint: `check that install.channelUrl points at the ${start.distribution} channel server, or upgrade to a ${line} version yourself first`,
      })
    }
    hops.push(hop)
  }
  hops.push(end)
  return hops
}

export interface SkewNode {
  name: string
  role: 'server' | 'agent'
  /** The kubelet's version (`status.nodeInfo.kubeletVersion`). */
  version: ReleaseVersion | string
}

export interface VersionGroup {
  version: string
  nodes: string[]
}

export interface SkewViolation {
  node: string
  version: string
  problem: string
}

/** The cluster's version verdict, as `status` shows it and pre-flight checks judge it. */
export interface ClusterSkew {
  /** Distinct versions, oldest first, with the nodes on each. */
  versions: VersionGroup[]
  /** The oldest server, i.e. the oldest API server every kubelet must not be newer than. */
  oldestServer?: string
  newestServer?: string
  /** True when every parsed node runs one version. */
  uniform: boolean
  /** Kubelets of a newer minor than the oldest API server: forbidden by Kubernetes' skew policy. */
  kubeletNewerThanApiServer: SkewViolation[]
  /** Kubelets more than three minors older than the newest API server: also unsupported. */
  kubeletTooOld: SkewViolation[]
  /** Servers more than one minor apart: the control plane skipped a minor. */
  serversTooFarApart: boolean
  /** Nodes whose version is not a k3s/rke2 version (reported, not judged). */
  unparsed: SkewViolation[]
  /** No rule is broken (a rolling upgrade in progress is fine). */
  ok: boolean
  /** One or more sentences for a person. */
  summary: string
}

// Since Kubernetes 1.28 a kubelet may trail the API server by three minors.
const MAX_KUBELET_LAG = 3

export function clusterSkew(nodes: readonly SkewNode[], expected?: Distribution): ClusterSkew {
  const parsed: Array<{node: SkewNode; version: ReleaseVersion}> = []
  const unparsed: SkewViolation[] = []
  for (const node of nodes) {
    if (typeof node.version !== 'string') {
      parsed.push({node, version: node.version})
      continue
    }
    try {
      parsed.push({node, version: parseVersion(node.version, expected)})
    } catch (error) {
      unparsed.push({node: node.name, version: node.version, problem: `${node.version} is not a ${expected ?? 'k3s or rke2'} version`})
    }
  }
  // A mix of k3s and rke2 versions has no order; report the minority as unparsed rather than throw.
  const distribution = majority(parsed.map((p) => p.version.distribution))
  const judged = parsed.filter((p) => {
    if (p.version.distribution === distribution) return true
    unparsed.push({node: p.node.name, version: p.version.format(), problem: `${p.version.format()} is ${p.version.distribution}, the rest of the cluster ${distribution}`})
    return false
  })

  const groups = new Map<string, {version: ReleaseVersion; nodes: string[]}>()
  for (const {node, version} of judged) {
    const key = version.format()
    const group = groups.get(key) ?? {version, nodes: []}
    group.nodes.push(node.name)
    groups.set(key, group)
  }
  const versions = [...groups.values()]
    .sort((a, b) => compareVersions(a.version, b.version))
    .map((g) => ({version: g.version.format(), nodes: g.nodes}))

  const servers = judged.filter((p) => p.node.role === 'server').sort((a, b) => compareVersions(a.version, b.version))
  const oldestServer = servers[0]
  const newestServer = servers.at(-1)

  const kubeletNewerThanApiServer: SkewViolation[] = []
  const kubeletTooOld: SkewViolation[] = []
  if (oldestServer && newestServer) {
    for (const {node, version} of judged) {
      // Servers are judged by serversTooFarApart: during a rolling upgrade an upgraded server's
      // kubelet is ahead of the servers not yet done, and that is how every HA upgrade goes.
      if (node.role === 'agent' && minorIndex(version) > minorIndex(oldestServer.version)) {
        kubeletNewerThanApiServer.push({
          node: node.name,
          version: version.format(),
          problem: `kubelet on ${node.name} (${version.format()}) is newer than the API server on ${oldestServer.node.name} (${oldestServer.version.format()})`,
        })
      }
      if (minorIndex(newestServer.version) - minorIndex(version) > MAX_KUBELET_LAG) {
        kubeletTooOld.push({
          node: node.name,
          version: version.format(),
          problem: `kubelet on ${node.name} (${version.format()}) is more than ${MAX_KUBELET_LAG} minors older than the API server on ${newestServer.node.name} (${newestServer.version.format()})`,
        })
      }
    }
  }
  const serversTooFarApart =
    oldestServer !== undefined &&
    newestServer !== undefined &&
    minorIndex(newestServer.version) - minorIndex(oldestServer.version) > 1

  const ok = kubeletNewerThanApiServer.length === 0 && kubeletTooOld.length === 0 && !serversTooFarApart
  const summary = summarize({
    versions,
    nodeCount: nodes.length,
    serversTooFarApart,
    oldestServer: oldestServer && `${oldestServer.node.name} (${oldestServer.version.format()})`,
    newestServer: newestServer && `${newestServer.node.name} (${newestServer.version.format()})`,
    hasServers: servers.length > 0,
    violations: [...kubeletNewerThanApiServer, ...kubeletTooOld],
    unparsed,
  })
  return {
    versions,
    oldestServer: oldestServer?.version.format(),
    newestServer: newestServer?.version.format(),
    uniform: versions.length <= 1,
    kubeletNewerThanApiServer,
    kubeletTooOld,
    serversTooFarApart,
    unparsed,
    ok,
    summary,
  }
}

function minorIndex(v: ReleaseVersion): number {
  return v.major * 1000 + v.minor
}

function majority<T>(values: readonly T[]): T | undefined {
  const counts = new Map<T, number>()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  let best: T | undefined
  for (const [v, n] of counts) if (best === undefined || n > (counts.get(best) ?? 0)) best = v
  return best
}

function summarize(s: {
  versions: VersionGroup[]
  nodeCount: number
  serversTooFarApart: boolean
  oldestServer?: string
  newestServer?: string
  hasServers: boolean
  violations: SkewViolation[]
  unparsed: SkewViolation[]
}): string {
  const sentences: string[] = []
  if (s.versions.length === 0) {
    sentences.push(s.nodeCount === 0 ? 'no nodes' : 'no node reports a known version')
  } else if (s.versions.length === 1) {
    const [only] = s.versions
    sentences.push(`all ${only.nodes.length} node${only.nodes.length === 1 ? '' : 's'} on ${only.version}`)
  } else {
    sentences.push(`mixed versions: ${s.versions.map((g) => `${g.version} (${g.nodes.join(', ')})`).join('; ')}`)
  }
  if (s.versions.length > 0 && !s.hasServers) sentences.push('no server reports a version, so skew cannot be judged')
  if (s.serversTooFarApart) {
    sentences.push(`FORBIDDEN: servers are more than one minor apart: ${s.oldestServer} vs ${s.newestServer}`)
  }
  for (const v of s.violations) sentences.push(`FORBIDDEN: ${v.problem}`)
  for (const u of s.unparsed) sentences.push(`unknown: ${u.node}: ${u.problem}`)
  if (s.versions.length > 1 && !s.serversTooFarApart && s.violations.length === 0) {
    sentences.push('within the skew policy (an upgrade in progress?)')
  }
  return sentences.join('. ')
}
