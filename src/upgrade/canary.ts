import {UsageError} from '../errors.js'
import type {UpgradePlan} from './types.js'

export interface CanaryRequest {
  /** --canary N. */
  count?: number
  /** --canary-nodes a,b. */
  nodes?: readonly string[]
  /** --soak, ms; default 5 minutes once a canary is asked for. */
  soakMs?: number
}

export const DEFAULT_SOAK_MS = 5 * 60_000

/**
 * The agents that go first and soak before the rest: the ones named, else the `count` agents
 * with the fewest pods to evict (the least disruption if they go wrong). Undefined when no
 * canary is asked for or no agent is left to upgrade in this hop.
 */
export function chooseCanary(plan: UpgradePlan, request: CanaryRequest): UpgradePlan['canary'] {
  const named = request.nodes ?? []
  const count = named.length > 0 ? named.length : (request.count ?? 0)
  if (count === 0) {
    if (request.soakMs !== undefined) throw new UsageError('--soak needs a canary', {hint: 'add --canary 1 (or --canary-nodes <agent>), or drop --soak'})
    return undefined
  }
  if (plan.agents.length === 0) return undefined
  const soakMs = request.soakMs ?? DEFAULT_SOAK_MS
  const agents = plan.agents.map((agent) => agent.name)
  if (named.length > 0) {
    for (const name of named) {
      if (!agents.includes(name)) {
        throw new UsageError(`--canary-nodes names ${name}, which is not an agent this run upgrades (agents: ${agents.join(', ')})`, {hint: 'name agents from the plan (homelab k8s upgrade --dry-run lists them)'})
      }
    }
    return {nodes: [...new Set(named)], soakMs}
  }
  if (count >= agents.length) {
    throw new UsageError(`--canary ${count} would leave no agent for after the soak (${agents.length} to upgrade)`, {hint: `pass --canary ${Math.max(1, agents.length - 1)} or fewer`})
  }
  const evictions = new Map(plan.drain.map((report) => [report.node, report.evict.length]))
  const fewest = [...agents].sort((a, b) => (evictions.get(a) ?? 0) - (evictions.get(b) ?? 0) || agents.indexOf(a) - agents.indexOf(b))
  return {nodes: fewest.slice(0, count), soakMs}
}
