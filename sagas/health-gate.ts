/**
 * The workload health gate both upgrade sagas share: a first step that records every
 * workload's availability, and per node a gate after it is back (uncordoned) that waits until
 * the workloads it ran are as available as before the run. No further node is cordoned while
 * a gate is open, so a broken upgrade stops at the first node it breaks.
 */
import type {KubeClients} from '../src/kube/client.js'
import {skip} from '../src/saga/engine.js'
import type {ActionContext, StepDefinition} from '../src/saga/types.js'
import {HealthGateError, type HealthBaseline, healthKey, healthOfNode, recordHealth, waitHealthRestored, wasHealthy} from '../src/safety/workload-health.js'

export interface HealthGateInput {
  /** Absent in journals written before the gate existed: no gate. */
  healthGate?: {enabled: boolean; timeoutMs: number}
}

export interface HealthGateData {
  healthBaseline?: HealthBaseline
}

export function healthBaselineStep<I extends HealthGateInput, D extends HealthGateData, C>(kube: KubeClients, now: () => Date): StepDefinition<I, D, C> {
  return {
    name: 'health-baseline',
    title: 'Record workload health',
    async run(ctx) {
      if (!ctx.input.healthGate?.enabled) return skip('upgrade.healthGate.enabled is false')
      // A resumed run keeps the health from before its first change.
      if (ctx.data.healthBaseline) return skip('recorded before the first change')
      const baseline = await recordHealth(kube, now)
      await ctx.updateData((data) => {
        data.healthBaseline = baseline
      })
      const unhealthy = baseline.records.filter((r) => !wasHealthy(r))
      ctx.log('info', `recorded ${baseline.records.length} workloads and budgets`)
      if (unhealthy.length > 0) ctx.log('warn', `unhealthy before the run, not waited on: ${unhealthy.map((r) => `${healthKey(r)} ${r.available}/${r.desired}`).join(', ')}`)
    },
  }
}

/** One per saga run: the gates of nodes back in service, and the barrier before the next node. */
export class HealthGates {
  private readonly open = new Set<Promise<unknown>>()
  /** The first gate that failed: no node is cordoned after it, even one started just before. */
  private failure?: HealthGateError

  constructor(private readonly kube: KubeClients) {}

  /**
   * Before a node is cordoned: waits for every open gate, then says which recorded workloads
   * run there now (what this node's gate will wait for). Undefined when the run has no gate.
   */
  async beforeCordon<I extends HealthGateInput, D extends HealthGateData, C>(ctx: ActionContext<I, D, C>): Promise<string[] | undefined> {
    const baseline = ctx.data.healthBaseline
    if (!ctx.input.healthGate?.enabled || !baseline) return undefined
    await Promise.allSettled([...this.open])
    if (this.failure) throw new HealthGateError(`${ctx.node} was not started: ${this.failure.message}`, {hint: this.failure.hint})
    return healthOfNode(this.kube, baseline, ctx.node)
  }

  /** After the node is uncordoned: until its workloads are back, bounded by upgrade.healthGate.timeout. */
  async afterUncordon<I extends HealthGateInput, D extends HealthGateData, C>(ctx: ActionContext<I, D, C>, keys: readonly string[] | undefined): Promise<void> {
    const baseline = ctx.data.healthBaseline
    const settings = ctx.input.healthGate
    if (!keys || !baseline || !settings?.enabled || keys.length === 0) return
    const gate = waitHealthRestored(this.kube, baseline, keys, {timeoutMs: settings.timeoutMs, after: ctx.node, node: ctx.node, signal: ctx.signal, onProgress: (message) => ctx.log('info', message)})
    this.open.add(gate)
    try {
      const result = await gate
      if (result.unhealthyBefore.length > 0) ctx.log('info', `not waited on (unhealthy before the run): ${result.unhealthyBefore.join(', ')}`)
      if (result.waitedFor.length > 0) ctx.log('info', `workloads back: ${result.waitedFor.join(', ')}`)
    } catch (error) {
      if (error instanceof HealthGateError) this.failure ??= error
      throw error
    } finally {
      this.open.delete(gate)
    }
  }
}
