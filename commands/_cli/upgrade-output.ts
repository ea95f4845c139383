import {createInterface} from 'node:readline/promises'

import type {UpgradeEvent, UpgradeResult} from '../../src/upgrade/run-upgrade.js'
import type {PlannedNode, UpgradePlan} from '../../src/upgrade/types.js'
import {mib} from '../../src/units.js'
import {ListrView} from './listr-view.js'
import {ndjsonWriter, plainLineWriter} from './events.js'

export interface EventSink {
  onEvent: (event: UpgradeEvent) => void
  /** Waits until everything received so far is on the screen (before a question). */
  flush: () => Promise<void>
  close: () => Promise<void>
}

/**
 * Where progress goes: NDJSON on stderr for pipelines, nothing on stdout under --json, listr2 on
 * a terminal, timestamped lines otherwise.
 */
export function eventSink(options: {json: boolean; logFormat: 'text' | 'json'; tty: boolean; concurrency: number; log: (line: string) => void; logToStderr: (line: string) => void}): EventSink {
  if (options.logFormat === 'json') {
    return {onEvent: ndjsonWriter((line) => process.stderr.write(`${line}\n`)), flush: async () => undefined, close: async () => undefined}
  }
  if (options.json) return {onEvent: () => undefined, flush: async () => undefined, close: async () => undefined}
  if (options.tty) {
    const view = new ListrView(options.concurrency, options.log)
    return {onEvent: view.handle, flush: () => view.close(), close: () => view.close()}
  }
  return {onEvent: plainLineWriter(options.log), flush: async () => undefined, close: async () => undefined}
}

export function renderPlan(plan: UpgradePlan): string {
  const lines = [`Upgrade to ${plan.target}:`]
  const describe = (n: UpgradePlan['servers'][number]) => [nodeLine(n), ...imagesLine(n)]
  const nodeLine = (n: UpgradePlan['servers'][number]) =>
    `    ${n.name} (${[n.serverKind, n.arch, ...(n.traits ?? ('serviceManager' in n ? [n.serviceManager] : []))].filter(Boolean).join(', ')}): ${n.fromVersion} → ${plan.target}${n.preCordoned ? ' [cordoned before; stays cordoned]' : ''}`
  lines.push(`  backup: ${plan.backup.velero ? 'Velero backup' : 'no Velero backup'}${plan.backup.etcdSnapshotNode ? `, etcd snapshot on ${plan.backup.etcdSnapshotNode}` : ''}`)
  lines.push(`  servers, one at a time:${plan.servers.length === 0 ? ' none' : ''}`, ...plan.servers.flatMap(describe))
  lines.push(`  agents, drained first:${plan.agents.length === 0 ? ' none' : ''}`, ...plan.agents.flatMap(describe))
  if (plan.canary) lines.push(`  canary: ${plan.canary.nodes.join(', ')} first, then a soak of ${Math.round(plan.canary.soakMs / 1000)}s (canaries Ready and workloads watched), then the rest`)
  for (const [phase, commands] of Object.entries(plan.hooks ?? {})) lines.push(`  ${phase} hooks: ${commands.join('; ')}`)
  for (const report of plan.drain) {
    lines.push(`    drain ${report.node}: evict ${report.evict.length} pod(s)${report.ignored ? `, leave ${report.ignored} (DaemonSet/mirror)` : ''}`)
  }
  for (const skipped of plan.skipped) lines.push(`  skip ${skipped.node}: ${skipped.reason}`)
  // Older journals (resumed runs) have no such list.
  if (plan.skippedComponents?.length) lines.push(`  packaged components left alone (.skip on every server): ${plan.skippedComponents.join(', ')}`)
  for (const warning of plan.warnings) lines.push(`  warning: ${warning}`)
  return lines.join('\n')
}

/** The node's images mode and, in archive mode, what is sent; nothing for journals without it. */
function imagesLine(node: UpgradePlan['servers'][number]): string[] {
  const images = 'images' in node ? (node as PlannedNode).images : undefined
  if (!images) return []
  const sent = images.archives?.map((a) => `${a.file} (${mib(a.size)})`).join(', ')
  return [`      images: ${images.mode} (${images.reason})${sent ? `; sends ${sent}` : ''}`]
}

export function renderResult(result: UpgradeResult): string {
  const lines: string[] = []
  const headline: Record<UpgradeResult['outcome'], string> = {
    succeeded: `Upgrade to ${result.target} succeeded.`,
    'nothing-to-do': `Nothing to do: every node is already at ${result.target}.`,
    'dry-run': 'Dry run: pre-flight passed; nothing was changed.',
    refused: 'Refused; nothing was changed.',
    failed: 'Failed before anything was changed.',
    compensated: 'The upgrade failed; every change was undone.',
    'compensation-incomplete': 'The upgrade failed and NOT every change could be undone. Manual steps below.',
    stopped: 'The upgrade failed and stopped (--on-failure=stop): nodes were uncordoned, the rest is left as is.',
    interrupted: 'Interrupted. The node in flight was finished or undone; continue with --resume.',
    locked: 'Another run holds the cluster lock; nothing was changed.',
    declined: 'Not confirmed; nothing was changed.',
  }
  // Undone means what was in flight: an earlier hop, or control planes kubeadm does not downgrade, stay where they got.
  const kept = result.outcome === 'compensated' ? result.nodes.filter((n) => n.before && n.after && n.after !== n.before) : []
  lines.push(kept.length === 0 ? headline[result.outcome] : `The upgrade failed; the changes in flight were undone. Newer than before, and kept: ${kept.map((n) => `${n.name} (${n.after})`).join(', ')}.`)
  if (result.error) lines.push(`  cause: ${result.error.message}${result.error.hint ? ` (fix: ${result.error.hint})` : ''}`)
  if (result.runIds.length > 0) lines.push(`  run: ${result.runIds.join(', ')}`)
  if (result.outcome !== 'dry-run' && result.outcome !== 'declined') {
    for (const node of result.nodes) {
      const end = node.end
      const state = !end ? '' : end.healthy ? `, Ready${end.cordoned ? ', cordoned (before the run)' : ''}` : ` — NOT HEALTHY: ${end.problems.join('; ')}`
      lines.push(`  ${node.name} (${node.role}): ${node.before ?? '?'} → ${node.after ?? '?'}${state}`)
    }
  }
  const verification = result.verification
  if (verification) {
    lines.push(verification.passed ? '  verified: every upgraded node Ready at the target, workloads as available as before, kube-system pods Ready' : '  verification FAILED:')
    for (const problem of verification.problems) lines.push(`    - ${problem}`)
    for (const w of verification.workloads) lines.push(`    ${w.workload}: ${w.before} → ${w.after} available (of ${w.desired})`)
  }
  for (const backup of result.backups) {
    if (backup.velero) lines.push(`  Velero backup: ${backup.velero}`)
    if (backup.etcdSnapshot) lines.push(`  etcd snapshot: ${backup.etcdSnapshot.name} on ${backup.etcdSnapshot.node}`)
  }
  if (result.manualSteps.length > 0) lines.push('', 'To finish by hand:', ...result.manualSteps.map((step) => `  ${step}`))
  if (result.outcome === 'stopped' || result.outcome === 'interrupted') {
    lines.push(`  resume: homelab k8s upgrade --resume ${result.runIds.at(-1) ?? ''}`, `  undo:   homelab k8s rollback ${result.runIds.at(-1) ?? ''}`)
  }
  lines.push(`  took ${(result.durationMs / 1000).toFixed(1)}s`)
  return lines.join('\n')
}

/** Asks on the terminal; anything but y/yes is no. */
export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({input: process.stdin, output: process.stderr})
  try {
    const answer = await rl.question(`${question} [y/N] `)
    return /^y(es)?$/i.test(answer.trim())
  } finally {
    rl.close()
  }
}
