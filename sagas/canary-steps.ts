/**
 * Canary and soak, shared by both upgrade sagas: the canary agents are the first agent batch,
 * then the cluster soaks with the canaries' Ready and the workloads watched, then the rest. A
 * failure in either fails the run, and compensation undoes the canaries alone: the sagas drop the
 * servers' undo once they are all at the target when a canary is set, and the other agents were
 * never touched. A resumed run that crashed during the soak soaks again.
 */
import type {V1Node} from '@kubernetes/client-node'

import {HomelabError, TimeoutError} from '../src/errors.js'
import type {KubeClients} from '../src/kube/client.js'
import {isNodeReady} from '../src/kube/nodes.js'
import {waitFor} from '../src/kube/wait.js'
import {skip} from '../src/saga/engine.js'
import type {StepContext, StepDefinition} from '../src/saga/types.js'
import {healthKey, waitHealthRestored, wasHealthy} from '../src/safety/workload-health.js'
import type {UpgradePlan} from '../src/upgrade/types.js'
import type {HealthGateData, HealthGateInput} from './health-gate.js'

interface CanaryInput extends HealthGateInput {
  plan: UpgradePlan
}

export class SoakError extends HomelabError {}

/** The agents of the plan that are not canaries, in plan order: what the ordinary agent step does. */
export function afterCanary<N extends {name: string}>(plan: {canary?: {nodes: string[]}}, agents: readonly N[]): N[] {
  const canary = new Set(plan.canary?.nodes ?? [])
  return agents.filter((agent) => !canary.has(agent.name))
}

export function canaryStep<I extends CanaryInput, D, C>(upgrade: (ctx: StepContext<I, D, C>, nodes: string[]) => Promise<void>): StepDefinition<I, D, C> {
  return {
    name: 'canary',
    title: 'Upgrade the canary agents',
    async run(ctx) {
      const canary = ctx.input.plan.canary
      if (!canary) return skip('no canary')
      await upgrade(ctx, canary.nodes)
    },
  }
}

export function soakStep<I extends CanaryInput, D extends HealthGateData, C>(kube: KubeClients): StepDefinition<I, D, C> {
  return {
    name: 'soak',
    title: 'Soak with the canaries',
    async run(ctx) {
      const canary = ctx.input.plan.canary
      if (!canary) return skip('no canary')
      const seconds = Math.round(canary.soakMs / 1000)
      ctx.log('info', `soaking ${seconds}s: watching ${canary.nodes.join(', ')} Ready and the workloads`)
      // The soak passes by running out: the watch only ends early when a canary is not Ready.
      const down = await waitFor<V1Node, string>({
        kube,
        path: '/api/v1/nodes',
        list: () => kube.core.listNode(),
        check: (nodes) => canary.nodes.find((name) => {
          const node = nodes.get(`/${name}`)
          return !node || !isNodeReady(node)
        }),
        timeoutMs: canary.soakMs,
        description: 'the soak',
        signal: ctx.signal,
      }).catch((error: unknown) => {
        if (error instanceof TimeoutError) return undefined
        throw error
      })
      if (down) throw new SoakError(`canary ${down} is not Ready during the soak`, {hint: `look at ${down} (kubectl describe node ${down}); the canaries are undone, the other agents were not touched`})
      const baseline = ctx.data.healthBaseline
      const gate = ctx.input.healthGate
      if (baseline && gate?.enabled) {
        await waitHealthRestored(kube, baseline, baseline.records.filter(wasHealthy).map(healthKey), {timeoutMs: gate.timeoutMs, after: `the soak of ${canary.nodes.join(', ')}`, signal: ctx.signal, onProgress: (message) => ctx.log('info', message)})
      }
      ctx.log('info', `soak of ${seconds}s passed`)
    },
  }
}
