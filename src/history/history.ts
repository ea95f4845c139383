/**
 * Past runs, read from the run journals (read-only): what `homelab k8s history` lists and shows.
 * The journal's format belongs to the saga engine (src/saga/journal.ts); this only reads it, and
 * reads an upgrade saga's `input` and `data` defensively, since a journal may come from another
 * saga or an older homelab.
 */
import {HomelabError} from '../errors.js'
import {writerIsAlive, type JournalStore} from '../saga/journal.js'
import type {ActionRecord, ErrorRecord, RunJournal, RunStatus, StepRecord} from '../saga/types.js'

/** A journal's status, and `running` split into a live run and one whose process is gone. */
export type RunOutcome = Exclude<RunStatus, 'running'> | 'running' | 'abandoned'

export interface RunBackups {
  velero?: string
  etcdSnapshot?: {node: string; name: string}
}

export interface RunSummary {
  id: string
  saga: string
  /** ISO time the run was created. */
  started: string
  /** ISO time of the journal's last write. */
  updated: string
  distribution?: string
  /** The kubelet versions the planned nodes ran before the run, oldest first. */
  from: string[]
  /** This run's target (one hop); `finalTarget` when the run is one hop of several. */
  to?: string
  finalTarget?: string
  outcome: RunOutcome
  /** From creation to the last write of the journal (includes any pause before a resume). */
  durationMs: number
  nodes: string[]
  backups: RunBackups
  /** Some step was started more than once: the run was resumed. */
  resumed: boolean
  /** Compensation ran (rollback, or compensation after a failure). */
  rolledBack: boolean
  error?: ErrorRecord
}

/** A node action as the journal keeps it, and how long it took. */
export type ActionDetail = ActionRecord & {durationMs?: number}

/** A step as the journal keeps it, and how long it took. */
export type StepDetail = Omit<StepRecord, 'actions'> & {durationMs?: number; actions: ActionDetail[]}

export interface CompensationDetail {
  id: string
  description: string
  node?: string
  state: string
  startedAt?: string
  finishedAt?: string
  error?: ErrorRecord
  manual?: string[]
}

export interface RunDetail extends RunSummary {
  steps: StepDetail[]
  /** Newest first, the order they run in. */
  compensations: CompensationDetail[]
}

export interface HistoryList {
  runs: RunSummary[]
  /** Runs left out by the limit. */
  more: number
  /** Journals that could not be read, with why. */
  unreadable: Array<{id: string; message: string}>
}

interface PlanLike {
  servers?: Array<{name?: unknown; fromVersion?: unknown}>
  agents?: Array<{name?: unknown; fromVersion?: unknown}>
}
interface InputLike {
  distribution?: unknown
  target?: unknown
  finalTarget?: unknown
  plan?: PlanLike
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined)
const between = (start?: string, end?: string): number | undefined => (start && end ? Math.max(0, Date.parse(end) - Date.parse(start)) : undefined)

export function summarize(journal: RunJournal, hostname?: string): RunSummary {
  const input = (journal.input ?? {}) as InputLike
  const planned = [...(Array.isArray(input.plan?.servers) ? input.plan.servers : []), ...(Array.isArray(input.plan?.agents) ? input.plan.agents : [])]
  const from = [...new Set(planned.map((n) => text(n.fromVersion)).filter((v): v is string => v !== undefined))].sort()
  const data = journal.data as {veleroBackup?: unknown; etcdSnapshot?: {node?: unknown; name?: unknown}}
  const snapshot = data.etcdSnapshot && text(data.etcdSnapshot.name) ? {node: String(data.etcdSnapshot.node ?? ''), name: String(data.etcdSnapshot.name)} : undefined
  const to = text(input.target)
  const finalTarget = text(input.finalTarget)
  return {
    id: journal.id,
    saga: journal.saga,
    started: journal.createdAt,
    updated: journal.updatedAt,
    distribution: text(input.distribution),
    from,
    to,
    ...(finalTarget && finalTarget !== to ? {finalTarget} : {}),
    // A run still `running` whose writer is gone was killed: --resume or rollback picks it up.
    outcome: journal.status === 'running' && writerIsAlive(journal, hostname) === false ? 'abandoned' : journal.status,
    durationMs: between(journal.createdAt, journal.updatedAt) ?? 0,
    nodes: planned.map((n) => text(n.name)).filter((n): n is string => n !== undefined),
    backups: {...(text(data.veleroBackup) ? {velero: String(data.veleroBackup)} : {}), ...(snapshot ? {etcdSnapshot: snapshot} : {})},
    resumed: journal.steps.some((s) => s.attempts > 1),
    rolledBack: journal.rollbackStartedAt !== undefined || journal.compensations.some((c) => c.state !== 'pending'),
    ...(journal.error ? {error: journal.error} : {}),
  }
}

export function detail(journal: RunJournal, hostname?: string): RunDetail {
  return {
    ...summarize(journal, hostname),
    steps: journal.steps.map((s) => ({
      name: s.name,
      title: s.title,
      state: s.state,
      attempts: s.attempts,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      durationMs: between(s.startedAt, s.finishedAt),
      reason: s.reason,
      error: s.error,
      actions: Object.values(s.actions).map((a) => ({
        node: a.node,
        state: a.state,
        startedAt: a.startedAt,
        finishedAt: a.finishedAt,
        durationMs: between(a.startedAt, a.finishedAt),
        reason: a.reason,
        error: a.error,
      })),
    })),
    compensations: [...journal.compensations].reverse().map((c) => ({
      id: c.id,
      description: c.description,
      node: c.node,
      state: c.state,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      error: c.error,
      manual: c.manual,
    })),
  }
}

/** Past runs, newest first, at most `limit`. */
export async function listHistory(journals: JournalStore, options: {limit?: number; hostname?: string} = {}): Promise<HistoryList> {
  const {runs, unreadable} = await journals.list()
  const limit = options.limit ?? runs.length
  return {
    runs: runs.slice(0, limit).map((run) => summarize(run, options.hostname)),
    more: Math.max(0, runs.length - limit),
    unreadable: unreadable.map((u) => ({id: u.id, message: u.error.message})),
  }
}

/** One run with its steps, node actions and compensations. An id that names no journal is a usage error. */
export async function showHistory(journals: JournalStore, id: string, options: {hostname?: string} = {}): Promise<RunDetail> {
  const journal = await journals.load(id).catch((error: unknown) => {
    if (error instanceof HomelabError && /^no run journal at /.test(error.message)) {
      throw new HomelabError(`no run ${id} in ${journals.dir}`, {cause: error, exitCode: error.exitCode, hint: 'see homelab k8s history for the run ids'})
    }
    throw error
  })
  return detail(journal.snapshot(), options.hostname)
}
