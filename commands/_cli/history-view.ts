/** How `homelab k8s history` reads on a terminal: a table of runs, or one run's steps and node actions. */
import {formatDuration} from '../../src/duration.js'
import type {HistoryList, RunDetail, RunSummary} from '../../src/history/history.js'
import type {ErrorRecord} from '../../src/saga/types.js'
import {renderTable} from './table.js'

/** `2025-05-14 10:30:12Z`: UTC, to the second, as the run ids are. */
export function shortTime(iso: string | undefined): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z` : '-'
}

const between = (start?: string, end?: string) => (start && end ? Math.max(0, Date.parse(end) - Date.parse(start)) : undefined)

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : formatDuration(ms < 10_000 ? Math.round(ms / 100) * 100 : Math.round(ms / 1000) * 1000))

function outcomeText(run: RunSummary): string {
  const notes = [run.resumed ? 'resumed' : '', run.outcome === 'abandoned' ? 'process gone' : ''].filter(Boolean)
  return notes.length > 0 ? `${run.outcome} (${notes.join(', ')})` : run.outcome
}

function versions(run: RunSummary): string {
  const to = run.finalTarget ? `${run.to} (of ${run.finalTarget})` : (run.to ?? '?')
  return `${run.from.length > 0 ? run.from.join(', ') : '?'} → ${to}`
}

export function backupsText(run: RunSummary): string {
  const parts = [run.backups.velero ? `velero ${run.backups.velero}` : '', run.backups.etcdSnapshot ? `etcd ${run.backups.etcdSnapshot.name}` : ''].filter(Boolean)
  return parts.length > 0 ? parts.join(', ') : '-'
}

/** `  <start> → <end> (<duration>)`, or nothing for what never started. */
function when(startedAt?: string, finishedAt?: string, durationMs?: number, extra = ''): string {
  if (!startedAt) return ''
  return `  ${shortTime(startedAt)} → ${finishedAt ? shortTime(finishedAt) : '…'}${finishedAt ? ` (${seconds(durationMs)}${extra})` : ''}`
}

const errorText = (e: ErrorRecord) => `${e.message}${e.hint ? ` (fix: ${e.hint})` : ''}`

export function renderHistory(list: HistoryList): string {
  if (list.runs.length === 0) return 'No runs yet: every homelab k8s upgrade and rollback is recorded here.'
  const table = renderTable(list.runs, [
    {header: 'ID', get: (r) => r.id},
    {header: 'STARTED', get: (r) => shortTime(r.started)},
    {header: 'DISTRIBUTION', get: (r) => r.distribution ?? '-'},
    {header: 'FROM → TO', get: versions},
    {header: 'OUTCOME', get: outcomeText},
    {header: 'DURATION', get: (r) => seconds(r.durationMs)},
    {header: 'NODES', get: (r) => (r.nodes.length > 0 ? r.nodes.join(',') : '-')},
    {header: 'BACKUPS', get: backupsText},
  ])
  const lines = [table]
  if (list.more > 0) lines.push('', `${list.more} older run${list.more === 1 ? '' : 's'} not shown (--limit)`)
  lines.push('', 'One run in detail: homelab k8s history <id>')
  return lines.join('\n')
}

export function renderRun(run: RunDetail): string {
  const lines = [
    `Run ${run.id} (${run.saga})`,
    `  started   ${shortTime(run.started)}, last written ${shortTime(run.updated)} (${seconds(run.durationMs)})`,
    `  outcome   ${outcomeText(run)}${run.rolledBack ? ', compensations ran' : ''}`,
    `  versions  ${run.distribution ?? '?'} ${versions(run)}`,
    `  nodes     ${run.nodes.join(', ') || '-'}`,
    `  backups   ${backupsText(run)}`,
  ]
  if (run.error) lines.push(`  error     ${errorText(run.error)}`)
  lines.push('', 'Steps:')
  for (const step of run.steps) {
    const attempts = step.attempts > 1 ? `, ${step.attempts} attempts` : ''
    lines.push(`  ${step.state.padEnd(11)} ${step.title}${when(step.startedAt, step.finishedAt, step.durationMs, attempts)}${step.reason ? `: ${step.reason}` : ''}`)
    if (step.error) lines.push(`              error: ${errorText(step.error)}`)
    for (const action of step.actions) {
      lines.push(`    ${action.state.padEnd(11)} ${action.node}${when(action.startedAt, action.finishedAt, action.durationMs)}${action.reason ? `: ${action.reason}` : ''}`)
      if (action.error) lines.push(`                error: ${errorText(action.error)}`)
    }
  }
  const ran = run.compensations.filter((c) => c.state !== 'pending')
  if (run.compensations.length > 0) {
    lines.push('', ran.length > 0 ? 'Compensations (newest first):' : 'Compensations registered (none ran; homelab k8s rollback runs them):')
    for (const c of run.compensations) {
      lines.push(`  ${c.state.padEnd(19)} ${c.description}${when(c.startedAt, c.finishedAt, between(c.startedAt, c.finishedAt))}`)
      if (c.error) lines.push(`                      error: ${errorText(c.error)}`)
    }
  }
  if (run.outcome === 'abandoned' || run.outcome === 'interrupted' || run.outcome === 'failed') {
    lines.push('', `Continue it: homelab k8s upgrade --resume ${run.id}    Undo it: homelab k8s rollback ${run.id}`)
  }
  return lines.join('\n')
}
