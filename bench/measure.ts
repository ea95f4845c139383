/**
 * What the benchmark measures, apart from how it builds the homelab: running the real CLI as a
 * child process (wall time, peak RSS), reading its NDJSON events (phase times), and reading the
 * simulated API's change and audit logs (reaction times). Nothing here talks to anything but
 * loopback, and every loop is bounded by its input.
 */
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import type {AuditEntry, ChangeEntry} from '../test/sim/kube-api/index.js'

export const TIME_BIN = '/usr/bin/time'

export interface ChildRun {
  exitCode: number
  stdout: string
  stderr: string
  wallMs: number
  /** Peak resident set size of the CLI process (MiB), and how it was taken. */
  peakRssMiB?: number
  rssSource: 'getrusage (GNU time %M)' | 'VmHWM sampled from /proc' | 'none'
}

/**
 * Runs `node <args>` as a child and waits for it. Peak RSS comes from GNU time's `%M` (the
 * kernel's ru_maxrss for the child, via wait4) where /usr/bin/time exists, else from the last
 * VmHWM read from /proc/<pid>/status (sampled every 50 ms, so a peak in the final 50 ms can be missed).
 */
export async function runNode(nodeArgs: string[], options: {env: Record<string, string>; cwd?: string; timeoutMs: number; rssFile?: string}): Promise<ChildRun> {
  const useTime = options.rssFile !== undefined && existsSync(TIME_BIN)
  const [command, args] = useTime
    ? [TIME_BIN, ['-f', '%M', '-o', options.rssFile as string, process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs]
  const started = performance.now()
  const child = spawn(command, args, {env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe']})
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  let hwmKiB = 0
  const sampler =
    options.rssFile !== undefined && !useTime
      ? setInterval(() => {
          readFile(`/proc/${child.pid}/status`, 'utf8')
            .then((text) => {
              const m = /VmHWM:\s+(\d+) kB/.exec(text)
              if (m) hwmKiB = Math.max(hwmKiB, Number(m[1]))
            })
            .catch(() => undefined)
        }, 50)
      : undefined
  const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
  const wallMs = performance.now() - started
  clearTimeout(killer)
  if (sampler) clearInterval(sampler)
  let peakRssMiB: number | undefined
  let rssSource: ChildRun['rssSource'] = 'none'
  if (useTime) {
    const text = await readFile(options.rssFile as string, 'utf8').catch(() => '')
    // GNU time writes "Command exited with non-zero status N" before the format line on failure.
    const kib = Number(text.trim().split('\n').at(-1))
    if (Number.isFinite(kib) && kib > 0) {
      peakRssMiB = kib / 1024
      rssSource = 'getrusage (GNU time %M)'
    }
    await rm(options.rssFile as string, {force: true})
  } else if (hwmKiB > 0) {
    peakRssMiB = hwmKiB / 1024
    rssSource = 'VmHWM sampled from /proc'
  }
  return {exitCode, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), wallMs, peakRssMiB, rssSource}
}

export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]
}

export const round1 = (n: number) => Math.round(n * 10) / 10
export const round3 = (n: number) => Math.round(n * 1000) / 1000

interface NdjsonEvent {
  type: string
  time: string
  step?: string
  node?: string
  message?: string
}

/** The CLI's `--log-format json` events (stderr), in order; lines that are not events are left out. */
export function parseEvents(stderr: string): NdjsonEvent[] {
  const events: NdjsonEvent[] = []
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const e = JSON.parse(line) as NdjsonEvent
      if (typeof e.type === 'string' && typeof e.time === 'string') events.push(e)
    } catch {
      // not an event line
    }
  }
  return events
}

/** Where the CLI's time went, from its own events: start-up, pre-flight, each saga step, the end. */
export function phases(events: readonly NdjsonEvent[], spawnedAt: number, exitedAt: number): Record<string, number> {
  const at = (pick: (e: NdjsonEvent) => boolean) => {
    const e = events.find(pick)
    return e ? Date.parse(e.time) : undefined
  }
  const hop = at((e) => e.type === 'hop-started')
  const plan = at((e) => e.type === 'plan')
  const runStarted = at((e) => e.type === 'run-started')
  const runFinished = at((e) => e.type === 'run-finished')
  const step = (name: string) => {
    const s = at((e) => e.type === 'step-started' && e.step === name)
    const f = at((e) => (e.type === 'step-finished' || e.type === 'step-skipped' || e.type === 'step-failed') && e.step === name)
    return s !== undefined && f !== undefined ? f - s : NaN
  }
  const firstEvent = events.length > 0 ? Date.parse(events[0].time) : NaN
  const backupMs = step('backup')
  const serversMs = step('servers')
  const agentsMs = step('agents')
  const sagaMs = (runFinished ?? NaN) - (runStarted ?? NaN)
  return {
    /** Process spawn to the first event (node, oclif, the command's imports, config, kubeconfig). */
    startupMs: firstEvent - spawnedAt,
    /** First event to pre-flight starting (target resolution, inventory). */
    beforePreflightMs: (hop ?? NaN) - firstEvent,
    preflightMs: plan !== undefined && hop !== undefined ? plan - hop : NaN,
    /** Plan to the saga's first event (lock, journal). */
    planToSagaMs: (runStarted ?? NaN) - (plan ?? NaN),
    /** The whole saga, run-started to run-finished. */
    sagaMs,
    backupMs,
    serversMs,
    agentsMs,
    /** The saga's other steps and the time between steps (journal writes). */
    otherStepsMs: sagaMs - backupMs - serversMs - agentsMs,
    /** Saga finished to process exit (end state read, result printed, connections closed). */
    afterSagaMs: exitedAt - (runFinished ?? NaN),
  }
}

/**
 * One node action, cut where the saga's own log lines fall: `start→cordoned` (the API read, the
 * wait for the node's background staging if it is not done yet, the journal),
 * `cordoned→swapped` (the drain, then the swap: one rename), `swapped→Ready` (the restart and the
 * wait, 2 s of it the simulated kubelet's), `Ready→uncordoned`, `uncordoned→done`. Medians (ms)
 * over the nodes whose name starts with `prefix`.
 */
export function actionSegments(events: readonly NdjsonEvent[], prefix: string): Record<string, number> {
  const marks: Array<[string, (e: NdjsonEvent & {message?: string}) => boolean]> = [
    ['start', (e) => e.type === 'action-started'],
    ['cordoned', (e) => e.type === 'log' && e.message === 'cordoned'],
    ['swapped', (e) => e.type === 'log' && (e.message ?? '').startsWith('binary swapped')],
    ['Ready', (e) => e.type === 'log' && (e.message ?? '').startsWith('Ready at')],
    ['uncordoned', (e) => e.type === 'log' && e.message === 'uncordoned'],
    ['done', (e) => e.type === 'action-finished'],
  ]
  const byNode = new Map<string, NdjsonEvent[]>()
  for (const e of events) if (e.node?.startsWith(prefix)) byNode.set(e.node, [...(byNode.get(e.node) ?? []), e])
  const samples: Record<string, number[]> = {}
  for (const list of byNode.values()) {
    const at = marks.map(([, pick]) => {
      const e = list.find(pick)
      return e ? Date.parse(e.time) : undefined
    })
    for (let i = 1; i < marks.length; i++) {
      const [a, b] = [at[i - 1], at[i]]
      if (a === undefined || b === undefined) continue
      const key = `${marks[i - 1][0]}→${marks[i][0]}`
      ;(samples[key] ??= []).push(b - a)
    }
    if (at[0] !== undefined && at.at(-1) !== undefined) (samples.total ??= []).push((at.at(-1) as number) - at[0])
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v))]))
}

/**
 * Reaction times: for every node that the simulation turned Ready at `target` (the kubelet's
 * change in the change log) after `since`, the time until the CLI's next write naming that node
 * (in the audit log: the uncordon patch). The audit `at` is taken when the response was decided,
 * a fraction of a millisecond after the request arrived, so this errs on the slow side.
 */
export function reactionTimes(changes: readonly ChangeEntry[], audit: readonly AuditEntry[], target: string, since: number): Array<{node: string; ms: number}> {
  const out: Array<{node: string; ms: number}> = []
  const readyAt = new Map<string, ChangeEntry>()
  for (const c of changes) {
    if (c.seq <= since || c.resource !== 'nodes' || c.type !== 'MODIFIED') continue
    if (c.diff.ready?.[1] !== 'True' || c.source !== 'controller:kubelet') continue
    const version = c.diff.kubeletVersion?.[1]
    if (version !== target) continue
    if (!readyAt.has(c.name)) readyAt.set(c.name, c)
  }
  const writes = audit.filter((e) => e.resource === 'nodes' && e.name !== undefined && !e.dryRun && ['create', 'update', 'patch', 'delete'].includes(e.verb))
  for (const [node, ready] of readyAt) {
    const next = writes.find((w) => w.name === node && w.startSeq > ready.seq)
    if (next) out.push({node, ms: next.at - ready.at})
  }
  return out
}

export function relative(file: string): string {
  return path.relative(process.cwd(), file) || file
}
