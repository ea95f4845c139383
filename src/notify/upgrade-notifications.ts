import type {UpgradeEvent, UpgradeResult} from '../upgrade/run-upgrade.js'
import type {NotifyEventName} from './events.js'
import type {Notifier} from './notifier.js'

/** Steps whose node actions upgrade a node: each finished one is a `node-done`. */
const NODE_STEPS = new Set(['servers', 'control-planes', 'canary', 'agents', 'workers'])

/**
 * Turns an upgrade's events and result into notifications: `started` when a run starts (or
 * resumes), `node-done` per upgraded node, and one of succeeded / failed / compensated /
 * interrupted at the end.
 */
export function upgradeNotifications(notifier: Notifier, distribution: string, now: () => Date = () => new Date()) {
  let target: string | undefined
  let from: string | undefined
  let runId: string | undefined
  const base = () => ({distribution, ...(runId ? {runId} : {}), ...(from ? {from} : {}), ...(target ? {to: target} : {}), at: now().toISOString()})
  return {
    onEvent(event: UpgradeEvent): void {
      if (!notifier.enabled) return
      if (event.type === 'target-resolved') target = event.target
      if (event.type === 'plan' && !from) {
        const versions = [...event.plan.servers, ...event.plan.agents].map((n) => n.fromVersion)
        from = versions.sort()[0]
        target ??= event.plan.target
      }
      if (event.type === 'run-started' && event.mode === 'forward') {
        runId = event.runId
        notifier.send({...base(), event: 'started', message: `${event.resumed ? 'resuming' : 'starting'} the upgrade of ${distribution}${target ? ` to ${target}` : ''} (run ${event.runId})`})
      }
      if (event.type === 'action-finished' && NODE_STEPS.has(event.step)) {
        notifier.send({...base(), event: 'node-done', node: event.node, message: `${event.node} upgraded${target ? ` to ${target}` : ''}`})
      }
    },
    /** The run was refused or failed before it had a result (pre-flight, the lock, the target). */
    refused(error: unknown): void {
      if (!notifier.enabled) return
      const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
      notifier.send({...base(), event: 'failed', message: `upgrade of ${distribution}${target ? ` to ${target}` : ''} refused, nothing changed: ${message}`})
    },
    finish(result: UpgradeResult): void {
      if (!notifier.enabled) return
      const event = outcomeEvent(result.outcome)
      if (!event) return
      target = result.target ?? target
      const cause = result.error ? `: ${result.error.message}` : ''
      const words: Record<NotifyEventName, string> = {
        started: '',
        'node-done': '',
        succeeded: `upgrade of ${distribution} to ${target} succeeded (${result.nodes.length} node(s), ${Math.round(result.durationMs / 1000)}s)`,
        compensated: `upgrade of ${distribution} to ${target} failed and was undone${cause}`,
        failed: `upgrade of ${distribution} to ${target} failed (${result.outcome})${cause}${result.manualSteps.length > 0 ? '; manual steps needed' : ''}`,
        interrupted: `upgrade of ${distribution} to ${target} was interrupted; continue with homelab k8s upgrade --resume`,
      }
      notifier.send({...base(), event, message: words[event]})
    },
  }
}

function outcomeEvent(outcome: UpgradeResult['outcome']): NotifyEventName | undefined {
  switch (outcome) {
    case 'succeeded':
      return 'succeeded'
    case 'compensated':
      return 'compensated'
    case 'interrupted':
      return 'interrupted'
    case 'failed':
    case 'refused':
    case 'compensation-incomplete':
    case 'stopped':
      return 'failed'
    default:
      // dry-run, nothing-to-do, declined, locked: nothing happened to tell anyone about.
      return undefined
  }
}
