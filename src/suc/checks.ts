/**
 * The version checks the SSH upgrade runs, applied to what the plans would do: the controller
 * itself refuses nothing (it will happily skip a minor or go back), so we refuse before the
 * plans reach the cluster.
 */
import {PreflightError, VersionError} from '../errors.js'
import type {ClusterNode} from '../kube/nodes.js'
import {selectorMatches} from '../kube/selectors.js'
import {classifyUpgrade, clusterSkew} from '../versions/skew.js'
import {type ReleaseVersion, parseVersion} from '../versions/release-version.js'
import {isEtcdOnly, isServerNode} from './roles.js'
import {formatLabelSelector} from './syntax.js'
import {type Plan, PLAN_ROLE_LABEL} from './types.js'

export interface PlanCheckResult {
  /** Nodes each plan selects, by plan name. */
  selected: Record<string, string[]>
  /** Nodes already at their plan's version (the controller still runs a Job there, which changes nothing). */
  atTarget: string[]
  warnings: string[]
}

export interface PlanCheckOptions {
  /** The version each plan installs (a channel's current answer for a channel plan); undefined skips the plan. */
  targetOf: (plan: Plan) => ReleaseVersion | undefined
  /** Every node must be selected by exactly one plan (our etcd/server/agent set). */
  exclusive?: boolean
}

/**
 * Judges each plan's target against the live nodes it selects. Refuses (PreflightError, exit 3)
 * a downgrade, including `+k3s2` → `+k3s1`, a skipped minor, and a server (any of the
 * control-plane, master and etcd labels) in an agent plan, listing every node at once.
 */
export function checkPlansAgainstNodes(plans: readonly Plan[], nodes: readonly ClusterNode[], options: PlanCheckOptions): PlanCheckResult {
  const problems: string[] = []
  const fixes = new Set<string>()
  const warnings: string[] = []
  const atTarget: string[] = []
  const selected: Record<string, string[]> = Object.fromEntries(plans.map((p) => [p.metadata.name, [] as string[]]))
  const checked = plans.filter((plan) => options.targetOf(plan) !== undefined)

  for (const node of nodes) {
    const mine = checked.filter((plan) => selectorMatches(plan.spec.nodeSelector, node.labels))
    for (const plan of mine) selected[plan.metadata.name].push(node.name)
    if (options.exclusive && mine.length === 0) {
      warnings.push(`node ${node.name} is selected by no plan and stays at ${node.kubeletVersion || 'its version'}`)
      continue
    }
    if (options.exclusive && mine.length > 1) {
      problems.push(`node ${node.name} is selected by ${mine.map((p) => p.metadata.name).join(' and ')}`)
      fixes.add(`make the selectors exclusive (${mine.map((p) => `${p.metadata.name}: ${formatLabelSelector(p.spec.nodeSelector)}`).join('; ')})`)
      continue
    }
    const asAgent = mine.find((plan) => plan.metadata.labels?.[PLAN_ROLE_LABEL] === 'agent')
    if (asAgent && isServerNode(node.labels)) {
      // Agents are drained several at a time after the servers: an etcd member or an API server
      // among them breaks the order (and etcd's quorum with it).
      problems.push(`node ${node.name} is ${isEtcdOnly(node.labels) ? 'an etcd-only server' : 'a server'}, but the agent plan ${asAgent.metadata.name} selects it`)
      fixes.add(`leave servers out of ${asAgent.metadata.name} (its selector: ${formatLabelSelector(asAgent.spec.nodeSelector)}), e.g. with !node-role.kubernetes.io/control-plane,!node-role.kubernetes.io/etcd`)
      continue
    }
    for (const plan of mine) judge(node, plan, options.targetOf(plan) as ReleaseVersion)
  }

  function judge(node: ClusterNode, plan: Plan, target: ReleaseVersion): void {
    if (!node.kubeletVersion) {
      warnings.push(`node ${node.name} reports no kubelet version; it was not checked`)
      return
    }
    let from: ReleaseVersion
    try {
      from = parseVersion(node.kubeletVersion)
    } catch {
      warnings.push(`node ${node.name} runs ${node.kubeletVersion}, which is not a k3s or rke2 version; it was not checked`)
      return
    }
    let kind
    try {
      kind = classifyUpgrade(from, target)
    } catch (error) {
      if (!(error instanceof VersionError)) throw error
      problems.push(`node ${node.name} runs ${from.format()} (${from.distribution}); plan ${plan.metadata.name} installs ${target.format()} (${target.distribution})`)
      fixes.add(`pass a ${from.distribution} version, or --distribution ${from.distribution}`)
      return
    }
    if (kind === 'same') atTarget.push(node.name)
    else if (kind === 'downgrade') {
      const sameRelease = from.major === target.major && from.kubernetes() === target.kubernetes()
      problems.push(
        sameRelease
          ? `node ${node.name} runs ${from.format()}; ${target.format()} is an older build of the same release (${from.distribution} release ${from.release} → ${target.release}): a downgrade`
          : `node ${node.name} runs ${from.format()}; ${target.format()} would be a downgrade`,
      )
      fixes.add(`pick a target of at least ${newest(nodes)}; going back means restoring a backup, not a plan`)
    } else if (kind === 'skip') {
      const next = `v${from.major}.${from.minor + 1}`
      problems.push(`node ${node.name} runs ${from.format()}; ${target.format()} skips ${skipped(from, target)}`)
      fixes.add(`upgrade one minor at a time: apply plans with --to ${next} first (that minor's newest release), wait for them (homelab k8s plan status --wait), then go on`)
    }
  }

  const skew = clusterSkew(nodes.filter((n) => n.kubeletVersion).map((n) => ({name: n.name, role: n.role, version: n.kubeletVersion})))
  if (!skew.ok) warnings.push(`the cluster already breaks the skew policy: ${skew.summary}`)

  if (problems.length > 0) {
    const targets = [...new Set(checked.map((p) => options.targetOf(p)?.format()))].join(', ')
    throw new PreflightError(`refusing plans for ${targets}; nothing was written to the cluster:\n  - ${problems.join('\n  - ')}`, {
      hint: [...fixes].join('; '),
    })
  }
  return {selected, atTarget, warnings}
}

function newest(nodes: readonly ClusterNode[]): string {
  let best: ReleaseVersion | undefined
  for (const node of nodes) {
    try {
      const v = parseVersion(node.kubeletVersion)
      if (!best || (v.distribution === best.distribution && v.compare(best) > 0)) best = v
    } catch {
      // Unparsable versions were reported already.
    }
  }
  return best?.format() ?? 'the running version'
}

function skipped(from: ReleaseVersion, to: ReleaseVersion): string {
  const lines: string[] = []
  for (let minor = from.minor + 1; minor < to.minor; minor++) lines.push(`v${from.major}.${minor}`)
  return lines.length === 1 ? `the minor version ${lines[0]}` : `the minor versions ${lines.join(', ')}`
}
