/**
 * What the upgrade scenarios share: a simulated homelab with fast timings, the built CLI run
 * or spawned (to follow its NDJSON events and signal it), and readers that turn the
 * simulation's audit and change logs into facts a test can assert on.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import type {TestContext} from 'node:test'

import {REPO_ROOT, startHomelab, type Homelab, type HomelabOptions} from '../sim/homelab.js'
import type {AuditEntry} from '../sim/kube-api/index.js'
import {currentBinaryVersion} from '../sim/node-fixture.js'

export const FROM = 'v1.31.4+k3s1'
export const TO = 'v1.31.5+k3s1'

export const SERVERS = ['server-1', 'server-2', 'server-3']
export const AGENTS = ['agent-1', 'agent-2', 'agent-3']

/** Tight timeouts so failures are found in seconds; everything else as a user would write it. */
export const FAST_CONFIG = {
  upgrade: {
    agentConcurrency: 2,
    drain: {timeout: '8s'},
    backup: {velero: {timeout: '10s'}},
    timeouts: {apiReady: '10s', nodeReady: '10s'},
  },
}

type Cleanup = (fn: () => Promise<void>) => void

/** CLIs spawned against each homelab, killed before it stops. */
const children = new WeakMap<Homelab, Set<ChildProcess>>()

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

/**
 * A homelab for one scenario, stopped after the test (`t`) or the suite (node:test's `after`).
 * In-process SSH unless asked: it is the fastest.
 */
export async function lab(cleanup: TestContext | Cleanup, options: HomelabOptions = {}): Promise<Homelab> {
  const homelab = await startHomelab({
    workloads: true,
    releases: [TO],
    ssh: 'inproc',
    readyDelayMs: 30,
    ...options,
    config: merge(FAST_CONFIG, options.config ?? {}),
  })
  const stop = async () => {
    // A CLI still running (a test that failed half-way) must not outlive its homelab and write into a removed dir.
    await Promise.all([...(children.get(homelab) ?? [])].map(killAndWait))
    await homelab.stop()
  }
  if (typeof cleanup === 'function') cleanup(stop)
  else cleanup.after(stop)
  return homelab
}

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out = {...base}
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key]
    const bothObjects = [value, current].every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))
    out[key] = bothObjects ? merge(current as Record<string, unknown>, value as Record<string, unknown>) : value
  }
  return out
}

/** Writes by the CLI (every HTTP write is the CLI's: the simulated controllers write to the store directly). */
export function writes(homelab: Homelab, since = 0): AuditEntry[] {
  return homelab.api.audit.writes().filter((entry) => entry.seq > since)
}

export function describeWrites(entries: readonly AuditEntry[]): string {
  return entries.map((e) => `${e.seq} ${e.verb} ${e.resource}${e.subresource ? `/${e.subresource}` : ''} ${e.namespace ?? ''}/${e.name ?? ''} ${e.code}`).join('\n')
}

/** The cordon (true) and uncordon (false) patches the CLI sent, in order. */
export function cordonPatches(homelab: Homelab): Array<{seq: number; node: string; cordon: boolean}> {
  return homelab.api.audit
    .matching({verb: 'patch', resource: 'nodes'})
    .filter((e) => e.code >= 200 && e.code < 300)
    .flatMap((e) => {
      const spec = (e.body as {spec?: {unschedulable?: boolean | null}} | undefined)?.spec
      if (!spec || !('unschedulable' in spec)) return []
      return [{seq: e.seq, node: e.name as string, cordon: spec.unschedulable === true}]
    })
}

/** Where every node is now: kubelet and on-disk version, Ready, cordoned. */
export async function nodeStates(homelab: Homelab): Promise<Map<string, {kubelet: string; disk: string; ready: boolean; cordoned: boolean}>> {
  const states = new Map<string, {kubelet: string; disk: string; ready: boolean; cordoned: boolean}>()
  for (const node of homelab.nodes) {
    const name = node.spec.name
    const object = homelab.api.nodes.get(name)
    const ready = ((object?.status?.conditions ?? []) as Array<{type: string; status: string}>).find((c) => c.type === 'Ready')?.status === 'True'
    states.set(name, {
      kubelet: String(object?.status?.nodeInfo?.kubeletVersion),
      disk: await currentBinaryVersion(node.fixture),
      ready,
      cordoned: object?.spec?.unschedulable === true,
    })
  }
  return states
}

/** The first change-log seq at which `node` was Ready at `version` after `after`. */
export function readyAtSeq(homelab: Homelab, node: string, version: string, after = 0): number | undefined {
  let ready = false
  let atVersion = false
  for (const change of homelab.api.changes.of('nodes', node)) {
    if (change.type === 'EVENT') continue
    if ('ready' in change.diff) ready = change.diff.ready[1] === 'True'
    if ('kubeletVersion' in change.diff) atVersion = change.diff.kubeletVersion[1] === version
    if (change.seq > after && ready && atVersion) return change.seq
  }
  return undefined
}

export interface RunFile {
  id: string
  status: string
  data: {veleroBackup?: string}
  steps: Array<{name: string; state: string; actions: Record<string, {state: string}>}>
  compensations: Array<{id: string; state: string}>
}

/** The run journals the CLI wrote, oldest first. */
export async function journals(homelab: Homelab): Promise<RunFile[]> {
  const dir = path.join(homelab.env.XDG_STATE_HOME, 'homelab', 'runs')
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).sort()
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(path.join(dir, f), 'utf8')) as RunFile))
}

export interface SagaEventLine {
  type: string
  step?: string
  node?: string
  id?: string
  runId?: string
  message?: string
  outcome?: string
  [key: string]: unknown
}

export interface SpawnedCli {
  child: ChildProcess
  /** NDJSON events from stderr so far (needs --log-format json). */
  events: SagaEventLine[]
  stdout(): string
  stderr(): string
  /** Resolves with the first event (seen or to come) matching `predicate`. */
  waitForEvent(predicate: (event: SagaEventLine) => boolean, timeoutMs?: number): Promise<SagaEventLine>
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

/** Starts the built CLI as a child we can signal, following its NDJSON events. Killed after the test if still running. */
export function spawnCli(t: TestContext, homelab: Homelab, args: string[]): SpawnedCli {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {env: homelab.env, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  let partial = ''
  const events: SagaEventLine[] = []
  const waiters: Array<{predicate: (e: SagaEventLine) => boolean; resolve: (e: SagaEventLine) => void}> = []
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString()
    err += text
    partial += text
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      if (!line.startsWith('{')) continue
      let event: SagaEventLine
      try {
        event = JSON.parse(line) as SagaEventLine
      } catch {
        continue
      }
      events.push(event)
      for (const waiter of [...waiters]) {
        if (waiter.predicate(event)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(event)
        }
      }
    }
  })
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('exit', (code, signal) => resolve({code, signal})))
  if (!children.has(homelab)) children.set(homelab, new Set())
  children.get(homelab)?.add(child)
  t.after(() => killAndWait(child))
  return {
    child,
    events,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForEvent(predicate, timeoutMs = 60_000) {
      const seen = events.find(predicate)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; stderr:\n${err.slice(-3000)}`)), timeoutMs)
        const waiter = {
          predicate,
          resolve: (event: SagaEventLine) => {
            clearTimeout(timer)
            resolve(event)
          },
        }
        waiters.push(waiter)
        void exited.then(() => {
          if (!waiters.includes(waiter)) return
          waiters.splice(waiters.indexOf(waiter), 1)
          clearTimeout(timer)
          reject(new Error(`the CLI exited before a matching event; stderr:\n${err.slice(-3000)}`))
        })
      })
    },
  }
}

/** The JSON document the CLI printed with --json. */
export function parseJson<T = Record<string, unknown>>(stdout: string): T {
  try {
    return JSON.parse(stdout) as T
  } catch {
    throw new Error(`stdout is not one JSON document:\n${stdout.slice(0, 3000)}`)
  }
}

/** The most of `nodes` cordoned at once, replaying the CLI's cordon patches; and how many are still cordoned at the end. */
export function mostCordonedAtOnce(homelab: Homelab, nodes: readonly string[]): {most: number; left: number} {
  const cordoned = new Set<string>()
  let most = 0
  for (const patch of cordonPatches(homelab).filter((p) => nodes.includes(p.node))) {
    if (patch.cordon) cordoned.add(patch.node)
    else cordoned.delete(patch.node)
    most = Math.max(most, cordoned.size)
  }
  return {most, left: cordoned.size}
}

/**
 * Makes `node` never Ready, then heals it once the compensation restarted it after it had started
 * at `version`: the new version is broken there, the old one works again. Await the result after the run.
 */
export function breakUntilCompensated(homelab: Homelab, node: string, version: string): Promise<void> {
  const {api} = homelab
  api.nodes.behave(node, {neverReady: true})
  return (async () => {
    const broken = await api.waitFor(() => api.k3sLog.find((e) => e.node === node && e.event === 'k3s-started' && e.version === version), {timeoutMs: 60_000, message: `${node} started at the target`})
    await api.waitFor(() => api.k3sLog.find((e) => e.node === node && e.event === 'k3s-stopped' && e.seq > broken.seq), {timeoutMs: 60_000, message: `${node} restarted by the compensation`})
    api.nodes.behave(node, {neverReady: false})
  })()
}
