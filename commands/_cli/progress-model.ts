/**
 * What the terminal view shows, as plain state built from the upgrade's events: pre-flight as one
 * line per node (checking, then what was found), and the agent stages' `done/total` with an
 * estimate of the time left. Pure: no listr2, no timers; every time comes in as an argument (ms),
 * so tests replay a sequence of events against a clock of their own.
 */
import type {UpgradeEvent} from '../../src/upgrade/run-upgrade.js'
import type {PlannedNodeBase, UpgradePlan} from '../../src/upgrade/types.js'

export type LineState = 'running' | 'done' | 'skipped' | 'failed'

/** One line of the pre-flight task: a node, or something else pre-flight is doing (a download). */
export interface PreflightLine {
  /** `node:<name>` or `progress:<message>`. */
  key: string
  node?: string
  state: LineState
  text: string
}

export interface PreflightState {
  hop: number
  target: string
  lines: PreflightLine[]
  /** 'stopped': the run ended before a plan came (a refusal; the reasons follow the view). */
  state: 'running' | 'done' | 'stopped'
  /** Once done: "6 nodes: 5 to upgrade, 1 skipped (agent-3)". */
  summary?: string
}

export interface StageState {
  step: string
  title: string
  nodes: readonly string[]
  concurrency: number
  startedAt: number
  endedAt?: number
  /** When each node's action started (ms). */
  running: Map<string, number>
  /** Finished or skipped (already done in an earlier attempt). */
  done: Set<string>
  failed: Set<string>
  /** Durations (ms) of the actions that finished here; skipped ones do not count. */
  durations: number[]
}

/** What one event changed, for the view to act on. */
export interface Change {
  /** A pre-flight task began (hop-started). */
  preflightStarted?: PreflightState
  /** Lines that appeared. */
  added: PreflightLine[]
  /** Lines that settled (done, skipped or failed); a settled line does not change again. */
  settled: PreflightLine[]
  /** The pre-flight task ended (the plan came). */
  preflightEnded?: PreflightState
  /** The event became pre-flight lines: the view should not print it again. */
  consumed: boolean
}

/** Steps whose node actions run several at once: their title counts and estimates. */
export const COUNTED_STEPS: ReadonlySet<string> = new Set(['agents', 'workers', 'canary'])

const CHECKING = /^checking (\S+) over SSH$/

/** The plan's non-canary agents, in plan order (what the 'agents'/'workers' step upgrades). */
function afterCanary(plan: UpgradePlan): PlannedNodeBase[] {
  const canary = new Set(plan.canary?.nodes ?? [])
  return plan.agents.filter((agent) => !canary.has(agent.name))
}

/** The nodes a step runs an action for, in order; undefined for steps without node actions. */
export function nodesOfStep(step: string, plan: UpgradePlan | undefined): string[] | undefined {
  if (!plan) return undefined
  switch (step) {
    case 'servers':
    case 'control-planes':
      return plan.servers.map((n) => n.name)
    case 'agents':
    case 'workers':
      return afterCanary(plan).map((n) => n.name)
    case 'canary':
      return plan.canary?.nodes ?? []
    default:
      return undefined
  }
}

/** What the plan says about one node: "agent-1: v1.31.4+k3s1 → v1.31.5+k3s1 (amd64, systemd)". */
export function describePlannedNode(node: PlannedNodeBase, target: string): string {
  const traits = [node.serverKind, node.arch, ...(node.traits ?? ('serviceManager' in node ? [String(node.serviceManager)] : []))].filter(Boolean)
  return `${node.name}: ${node.fromVersion} → ${target}${traits.length > 0 ? ` (${traits.join(', ')})` : ''}${node.preCordoned ? ', cordoned before (stays cordoned)' : ''}`
}

/** 45s, 2m 10s, 1h 5m. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`
}

/**
 * Time left (ms) of a stage, or undefined before any node finished. Remaining nodes / concurrency
 * × the mean of the finished actions, less what the nodes in flight have already run (each at
 * most the mean): the work left, shared by the nodes that can run at once.
 */
export function estimateLeft(stage: StageState, now: number): number | undefined {
  if (stage.durations.length === 0) return undefined
  const mean = stage.durations.reduce((a, b) => a + b, 0) / stage.durations.length
  const left = stage.nodes.filter((node) => !stage.done.has(node) && !stage.failed.has(node))
  if (left.length === 0) return 0
  let work = 0
  for (const node of left) {
    const started = stage.running.get(node)
    work += started === undefined ? mean : Math.max(0, mean - (now - started))
  }
  return work / Math.min(stage.concurrency, left.length)
}

/** The step's title with `done/total` and the estimate: "Drain and upgrade agents — 3/8 · about 2m 10s left". */
export function stageTitle(stage: StageState, now: number): string {
  const total = stage.nodes.length
  const count = `${stage.done.size}/${total}`
  const failed = stage.failed.size > 0 ? `, ${stage.failed.size} failed` : ''
  if (stage.endedAt !== undefined) return `${stage.title} — ${count}${failed}, took ${formatDuration(stage.endedAt - stage.startedAt)}`
  // After a failure no new node starts: what is left is the nodes in flight.
  if (stage.failed.size > 0) return `${stage.title} — ${count}${failed}; finishing the nodes in flight`
  if (stage.done.size === total) return `${stage.title} — ${count}`
  const left = estimateLeft(stage, now)
  if (left === undefined) return `${stage.title} — ${count} · estimating…`
  if (left < 1000) return `${stage.title} — ${count} · taking longer than the others did`
  return `${stage.title} — ${count} · about ${formatDuration(left)} left`
}

export class ProgressModel {
  plan?: UpgradePlan
  preflight?: PreflightState
  readonly stages = new Map<string, StageState>()

  constructor(private readonly concurrency: number) {}

  /** Applies one event at `now` (ms) and says what changed. */
  apply(event: UpgradeEvent, now: number): Change {
    const change: Change = {added: [], settled: [], consumed: false}
    switch (event.type) {
      case 'hop-started':
        this.preflight = {hop: event.hop, target: event.target, lines: [], state: 'running'}
        change.preflightStarted = this.preflight
        change.consumed = true
        break
      case 'progress': {
        const preflight = this.openPreflight()
        if (!preflight) break
        const node = CHECKING.exec(event.message)?.[1]
        const key = node ? `node:${node}` : `progress:${event.message}`
        if (!preflight.lines.some((line) => line.key === key)) {
          const line: PreflightLine = {key, node, state: 'running', text: node ? `${node}: checking over SSH` : event.message}
          preflight.lines.push(line)
          change.added.push(line)
        }
        change.consumed = true
        break
      }
      case 'node-checked': {
        const preflight = this.openPreflight()
        if (!preflight) break
        const line = this.nodeLine(preflight, event.node, change)
        change.consumed = true
        if (line.state !== 'running') break
        line.state = event.problem ? 'failed' : 'done'
        line.text = event.problem
          ? `${event.node}: ${event.problem}`
          : `${event.node}: ${[event.version, event.traits?.length ? `(${event.traits.join(', ')})` : undefined].filter(Boolean).join(' ') || 'checked'}`
        change.settled.push(line)
        change.consumed = true
        break
      }
      case 'plan': {
        this.plan = event.plan
        const preflight = this.openPreflight()
        if (!preflight) break
        this.settleFromPlan(preflight, event.plan, change)
        preflight.state = 'done'
        change.preflightEnded = preflight
        change.consumed = true
        break
      }
      case 'step-started': {
        const nodes = COUNTED_STEPS.has(event.step) ? nodesOfStep(event.step, this.plan) : undefined
        if (nodes) this.stages.set(event.step, {step: event.step, title: event.title, nodes, concurrency: this.concurrency, startedAt: now, running: new Map(), done: new Set(), failed: new Set(), durations: []})
        break
      }
      case 'step-finished':
      case 'step-skipped':
      case 'step-failed':
      case 'step-interrupted': {
        const stage = this.stages.get(event.step)
        if (stage && stage.endedAt === undefined) stage.endedAt = now
        break
      }
      case 'action-started':
        this.stages.get(event.step)?.running.set(event.node, now)
        break
      case 'action-finished': {
        const stage = this.stages.get(event.step)
        if (!stage) break
        const started = stage.running.get(event.node)
        if (started !== undefined) stage.durations.push(now - started)
        stage.running.delete(event.node)
        stage.done.add(event.node)
        break
      }
      case 'action-skipped': {
        const stage = this.stages.get(event.step)
        stage?.running.delete(event.node)
        stage?.done.add(event.node)
        break
      }
      case 'action-failed':
      case 'action-interrupted': {
        const stage = this.stages.get(event.step)
        stage?.running.delete(event.node)
        stage?.failed.add(event.node)
        break
      }
      default:
        break
    }
    return change
  }

  /** The run ended without a plan for the open pre-flight (refused, locked, an error): lines still running have no result. */
  stop(): Change {
    const change: Change = {added: [], settled: [], consumed: false}
    const preflight = this.openPreflight()
    if (!preflight) return change
    for (const line of preflight.lines) {
      if (line.state !== 'running') continue
      line.state = 'skipped'
      line.text = line.node ? `${line.node}: no result (see below)` : `${line.text}: not finished`
      change.settled.push(line)
    }
    preflight.state = 'stopped'
    change.preflightEnded = preflight
    return change
  }

  /** A node stage's title now, or undefined for steps that are not counted. */
  title(step: string, now: number): string | undefined {
    const stage = this.stages.get(step)
    return stage ? stageTitle(stage, now) : undefined
  }

  private openPreflight(): PreflightState | undefined {
    return this.preflight?.state === 'running' ? this.preflight : undefined
  }

  private nodeLine(preflight: PreflightState, node: string, change: Change): PreflightLine {
    let line = preflight.lines.find((l) => l.key === `node:${node}`)
    if (!line) {
      line = {key: `node:${node}`, node, state: 'running', text: `${node}: checking`}
      preflight.lines.push(line)
      change.added.push(line)
    }
    return line
  }

  private settleFromPlan(preflight: PreflightState, plan: UpgradePlan, change: Change): void {
    const planned = new Map([...plan.servers, ...plan.agents].map((n) => [n.name, n]))
    const skipped = new Map(plan.skipped.map((s) => [s.node, s.reason]))
    // Every node the plan names gets a line, checked over SSH or not.
    for (const name of [...planned.keys(), ...skipped.keys()]) this.nodeLine(preflight, name, change)
    // A line is final once settled (a node-checked event): the plan settles the ones still running.
    for (const line of preflight.lines) {
      if (line.state !== 'running') continue
      const node = line.node ? planned.get(line.node) : undefined
      const reason = line.node ? skipped.get(line.node) : undefined
      if (node) {
        line.state = 'done'
        line.text = describePlannedNode(node, plan.target)
      } else if (reason !== undefined) {
        line.state = 'skipped'
        line.text = `${line.node}: skip: ${reason}`
      } else {
        line.state = 'done'
        if (line.node) line.text = `${line.node}: checked`
      }
      change.settled.push(line)
    }
    const nodes = preflight.lines.filter((l) => l.node).length
    const names = [...skipped.keys()]
    const parts = [`${planned.size} to upgrade`, ...(names.length > 0 ? [`${names.length} skipped${names.length <= 5 ? ` (${names.join(', ')})` : ''}`] : [])]
    preflight.summary = `${nodes} node${nodes === 1 ? '' : 's'}: ${parts.join(', ')}`
  }
}
