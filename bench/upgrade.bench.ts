/**
 * `npm run bench` (issue 11, §3): how close a whole `homelab k8s upgrade` comes to the time the
 * cluster itself needs, on the simulated homelab, and how fast the CLI starts.
 *
 *   Scenario S: 3 servers + 20 agents, concurrency 5, real OpenSSH sshd per node.
 *   Scenario L: 3 servers + 200 agents, concurrency 25, the in-process SSH server (ssh2).
 *   Both: restart-to-Ready 2 s, Velero backup 1 s, 5 pods per agent that take 0.2 s to stop.
 *
 * The product runs as the real CLI process (`node bin/run.js k8s upgrade … --json --log-format
 * json`), under GNU time for its peak RSS. Per scenario: the physical limit from the settings,
 * the wall time (median of BENCH_ROUNDS, default 3), their ratio, peak RSS, pre-flight time and
 * the other phases (from the CLI's NDJSON events), and the reaction time from the simulation
 * marking a node Ready at the target to the CLI's next write for that node (the simulated API's
 * change and audit logs). Then start-up medians of four commands beside `node -e 0`.
 *
 * Writes bench/results.json and bench/RESULTS.md. Env: BENCH_ROUNDS (3), BENCH_SCENARIOS (S,L),
 * BENCH_STARTUP_RUNS (11), BENCH_PREFLIGHT_RUNS (5: dry-runs of a 3+3 homelab over sshd), BENCH_CPU_PROF=<dir> (the CLI runs with --cpu-prof into <dir>),
 * BENCH_LOG_DIR=<dir> (keeps each round's NDJSON events, audit, change and node command logs),
 * BENCH_SSH_L=openssh|inproc (L's SSH server, default inproc), BENCH_RENDER_ONLY=1 (only write
 * RESULTS.md again from results.json, e.g. after editing bench/notes.md).
 * Loopback only; every loop is bounded by those numbers.
 */
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {REPO_ROOT, startHomelab, type Homelab} from '../test/sim/homelab.js'
import {actionSegments, median, parseEvents, percentile, phases, reactionTimes, relative, round1, round3, runNode, type ChildRun} from './measure.js'
import {renderResultsMd} from './report.js'

const FROM = 'v1.31.4+k3s1'
const TARGET = 'v1.31.5+k3s1'
const RUN_JS = path.join(REPO_ROOT, 'bin', 'run.js')
const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 3)
const STARTUP_RUNS = positiveInt(process.env.BENCH_STARTUP_RUNS, 11)
const PREFLIGHT_RUNS = positiveInt(process.env.BENCH_PREFLIGHT_RUNS, 5)
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined
const LOG_DIR = process.env.BENCH_LOG_DIR ? path.resolve(process.env.BENCH_LOG_DIR) : undefined

function positiveInt(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 50) throw new Error(`expected an integer 1..50, got ${JSON.stringify(value)}`)
  return n
}

export interface Scenario {
  name: 'S' | 'L'
  servers: number
  agents: number
  concurrency: number
  restartToReadyMs: number
  backupMs: number
  podsPerAgent: number
  podTerminationMs: number
  ssh: 'openssh' | 'inproc'
  targets: {ratio: number}
}

const common = {servers: 3, restartToReadyMs: 2000, backupMs: 1000, podsPerAgent: 5, podTerminationMs: 200}
const SCENARIOS: Record<'S' | 'L', Scenario> = {
  S: {name: 'S', ...common, agents: 20, concurrency: 5, ssh: 'openssh', targets: {ratio: 1.05}},
  L: {name: 'L', ...common, agents: 200, concurrency: 25, ssh: sshKind(process.env.BENCH_SSH_L, 'inproc'), targets: {ratio: 1.1}},
}

function sshKind(value: string | undefined, fallback: 'openssh' | 'inproc'): 'openssh' | 'inproc' {
  if (value === undefined || value === '') return fallback
  if (value !== 'openssh' && value !== 'inproc') throw new Error(`BENCH_SSH_L: openssh or inproc, not ${JSON.stringify(value)}`)
  return value
}

const TARGETS = {reactionP50Ms: 100, peakRssMiBL: 300, startupMs: 250, preflightSixNodesMs: 1000, preflightLMs: 5000}

/**
 * What the cluster needs however fast the tool: the backup, each server's restart one after
 * another (servers are not drained), then the agents in ⌈agents/c⌉ waves of drain + restart (a
 * drain evicts a node's pods at once, so it lasts one pod's termination).
 */
export function physicalLimitMs(s: Scenario): number {
  return s.backupMs + s.servers * s.restartToReadyMs + Math.ceil(s.agents / s.concurrency) * (s.podTerminationMs + s.restartToReadyMs)
}

/** Ordinary workloads: `podsPerAgent` ReplicaSets with one pod on every agent, nothing blocking a drain. */
function addWorkloads(lab: Homelab, s: Scenario): void {
  const agents = lab.nodes.filter((n) => n.spec.role === 'agent').map((n) => n.spec.name)
  for (let i = 0; i < s.podsPerAgent; i++) {
    lab.api.workloads.addReplicaSet({name: `app-${i + 1}`, namespace: 'default', podsOn: agents})
  }
}

interface RoundResult {
  wallMs: number
  peakRssMiB?: number
  rssSource: ChildRun['rssSource']
  phases: Record<string, number>
  serverAction: Record<string, number>
  agentAction: Record<string, number>
  reactions: Array<{node: string; ms: number}>
  homelabStartMs: number
}

async function runRound(s: Scenario, round: number): Promise<RoundResult> {
  const startedLab = performance.now()
  const lab = await startHomelab({
    servers: s.servers,
    agents: s.agents,
    ssh: s.ssh,
    version: FROM,
    releases: [TARGET],
    readyDelayMs: s.restartToReadyMs,
    // Restart-to-Ready counts from the service manager taking the restart, as the limit does,
    // not from the fake binary's report: its stop report and start are node processes here.
    api: {velero: {backupDurationMs: s.backupMs}, controllers: {kubelet: {terminationDelayMs: s.podTerminationMs}}, nodeDefaults: {readyDelayFrom: 'service-manager'}},
    config: {upgrade: {agentConcurrency: s.concurrency, drain: {timeout: '60s'}, timeouts: {apiReady: '60s', nodeReady: '60s'}}},
  })
  const homelabStartMs = performance.now() - startedLab
  try {
    addWorkloads(lab, s)
    // Let the simulated controllers settle (pods Running, ReplicaSets observed) before the clock starts.
    await lab.api.waitFor(() => lab.api.pods.list().every((p) => p.status?.phase === 'Running') || undefined, {timeoutMs: 30_000, message: 'the workloads to run'})
    const mark = lab.api.mark()
    const profArgs = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF, '--cpu-prof-name', `${s.name}-round${round + 1}.cpuprofile`] : []
    const args = ['k8s', 'upgrade', '--to', TARGET, '--yes', '--json', '--log-format', 'json', '--concurrency', String(s.concurrency)]
    const spawnedAt = Date.now()
    const run = await runNode([...profArgs, RUN_JS, ...args], {env: {...lab.env, CI: 'true'}, timeoutMs: 15 * 60_000, rssFile: path.join(lab.root, 'rss.txt')})
    const exitedAt = Date.now()
    if (LOG_DIR) await keepLogs(lab, `${s.name}-round${round + 1}`, run)
    let outcome = 'unparsed'
    try {
      outcome = (JSON.parse(run.stdout) as {outcome: string}).outcome
    } catch {
      // reported below
    }
    if (run.exitCode !== 0 || outcome !== 'succeeded') {
      throw new Error(`scenario ${s.name} round ${round + 1}: the upgrade exited ${run.exitCode} (${outcome}):\n${run.stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n').slice(-3000)}\n${run.stdout.slice(-2000)}`)
    }
    const notAtTarget = lab.api.nodes.list().filter((n) => n.status?.nodeInfo?.kubeletVersion !== TARGET || n.spec?.unschedulable)
    if (notAtTarget.length > 0) throw new Error(`scenario ${s.name}: not at ${TARGET} or still cordoned after the run: ${notAtTarget.map((n) => n.metadata.name).join(', ')}`)
    const events = parseEvents(run.stderr)
    return {
      wallMs: run.wallMs,
      peakRssMiB: run.peakRssMiB,
      rssSource: run.rssSource,
      phases: phases(events, spawnedAt, exitedAt),
      serverAction: actionSegments(events, 'server-'),
      agentAction: actionSegments(events, 'agent-'),
      reactions: reactionTimes(lab.api.changes, lab.api.audit, TARGET, mark),
      homelabStartMs,
    }
  } finally {
    await lab.stop()
  }
}

/** BENCH_LOG_DIR: the CLI's NDJSON events, the API's audit and change logs and every node's command log, for a closer look. */
async function keepLogs(lab: Homelab, name: string, run: ChildRun): Promise<void> {
  const dir = path.join(LOG_DIR as string, name)
  await mkdir(dir, {recursive: true})
  await writeFile(path.join(dir, 'cli.ndjson'), run.stderr)
  await writeFile(path.join(dir, 'audit.ndjson'), lab.api.audit.map((e) => JSON.stringify({...e, body: undefined})).join('\n') + '\n')
  await writeFile(path.join(dir, 'changes.ndjson'), lab.api.changes.map((e) => JSON.stringify({...e, data: undefined})).join('\n') + '\n')
  for (const node of lab.nodes) {
    const log = await readFile(path.join(node.fixture.dir, 'state', 'commands.log'), 'utf8').catch(() => '')
    await writeFile(path.join(dir, `commands-${node.spec.name}.log`), log)
  }
}

async function runScenario(s: Scenario) {
  const rounds: RoundResult[] = []
  const loadAvgAtStart = os.loadavg()[0]
  for (let round = 0; round < ROUNDS; round++) {
    process.stderr.write(`bench: scenario ${s.name} (${s.servers}+${s.agents}, c=${s.concurrency}, ${s.ssh} ssh) round ${round + 1}/${ROUNDS}…\n`)
    const r = await runRound(s, round)
    process.stderr.write(`bench:   ${(r.wallMs / 1000).toFixed(2)} s, pre-flight ${(r.phases.preflightMs / 1000).toFixed(2)} s, peak RSS ${r.peakRssMiB?.toFixed(0) ?? '?'} MiB\n`)
    rounds.push(r)
  }
  const limit = physicalLimitMs(s)
  const wallMs = median(rounds.map((r) => r.wallMs))
  const reactions = rounds.flatMap((r) => r.reactions.map((x) => x.ms))
  const phaseNames = Object.keys(rounds[0].phases)
  const rss = rounds.map((r) => r.peakRssMiB).filter((x): x is number => x !== undefined)
  const ratio = wallMs / limit
  return {
    servers: s.servers,
    agents: s.agents,
    concurrency: s.concurrency,
    restartToReadyMs: s.restartToReadyMs,
    backupMs: s.backupMs,
    podsPerAgent: s.podsPerAgent,
    podTerminationMs: s.podTerminationMs,
    sshServer: s.ssh === 'openssh' ? 'openssh (one real sshd per node, loopback)' : 'inproc (ssh2 server inside the bench process, loopback)',
    rounds: ROUNDS,
    physicalLimitMs: limit,
    wallMs: Math.round(wallMs),
    wallRunsMs: rounds.map((r) => Math.round(r.wallMs)),
    ratio: round3(ratio),
    ratioTarget: s.targets.ratio,
    ratioMet: ratio <= s.targets.ratio,
    /** The largest of the rounds. */
    peakRssMiB: rss.length ? round1(Math.max(...rss)) : null,
    peakRssRunsMiB: rss.map(round1),
    peakRssSource: rounds[0].rssSource,
    preflightMs: Math.round(median(rounds.map((r) => r.phases.preflightMs))),
    /** Medians over the rounds, from the CLI's NDJSON event times. */
    phasesMs: Object.fromEntries(phaseNames.map((p) => [p, Math.round(median(rounds.map((r) => r.phases[p])))])),
    /** One server's and one agent's action cut at the saga's log lines (medians over the nodes, then over the rounds). */
    serverActionMs: medianOfRecords(rounds.map((r) => r.serverAction)),
    agentActionMs: medianOfRecords(rounds.map((r) => r.agentAction)),
    /** Milliseconds from the simulated kubelet marking a node Ready at the target to the CLI's next write for it (its uncordon), over every node of every round. */
    reactionMs: {n: reactions.length, p50: percentile(reactions, 50), p95: percentile(reactions, 95), max: reactions.length ? Math.max(...reactions) : NaN},
    reactionP50Met: percentile(reactions, 50) <= TARGETS.reactionP50Ms,
    homelabStartMs: Math.round(median(rounds.map((r) => r.homelabStartMs))),
    loadAvgAtStart: round1(loadAvgAtStart),
  }
}

function medianOfRecords(records: Array<Record<string, number>>): Record<string, number> {
  const keys = Object.keys(records[0] ?? {})
  return Object.fromEntries(keys.map((k) => [k, Math.round(median(records.map((r) => r[k]).filter((v) => Number.isFinite(v))))]))
}

/** Start-up: each command STARTUP_RUNS times (after two warm-ups) with no homelab.yaml around, median wall time. */
async function runStartup() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'homelab-bench-startup-'))
  try {
    const env = {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: dir, XDG_STATE_HOME: dir, XDG_CACHE_HOME: dir, KUBECONFIG: path.join(dir, 'none')}
    const commands: Record<string, string[]> = {
      nodeMs: ['-e', '0'],
      helpMs: [RUN_JS, '--help'],
      versionMs: [RUN_JS, '--version'],
      upgradeHelpMs: [RUN_JS, 'k8s', 'upgrade', '--help'],
      planGenerateOfflineMs: [RUN_JS, 'k8s', 'plan', 'generate', '--to', TARGET, '--offline'],
    }
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((k) => [k, []]))
    // Interleaved, so a burst of load from other processes hits every command alike.
    for (let i = 0; i < STARTUP_RUNS + 2; i++) {
      for (const [name, args] of Object.entries(commands)) {
        const run = await runNode(args, {env, cwd: dir, timeoutMs: 30_000})
        if (run.exitCode !== 0) throw new Error(`start-up: node ${args.join(' ')} exited ${run.exitCode}: ${run.stderr.slice(-1000)}`)
        if (i >= 2) samples[name].push(run.wallMs)
      }
    }
    const m = (name: string) => Math.round(median(samples[name]))
    const medians = {nodeMs: m('nodeMs'), helpMs: m('helpMs'), versionMs: m('versionMs'), upgradeHelpMs: m('upgradeHelpMs'), planGenerateOfflineMs: m('planGenerateOfflineMs')}
    const slowest = Math.max(medians.helpMs, medians.versionMs, medians.upgradeHelpMs, medians.planGenerateOfflineMs)
    return {runs: STARTUP_RUNS, ...medians, planGenerateArgs: `k8s plan generate --to ${TARGET} --offline`, targetMs: TARGETS.startupMs, met: slowest <= TARGETS.startupMs}
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

/**
 * Pre-flight alone on 3 servers + 3 agents over real sshd (the "6 nodes ≤ 1 s"): the
 * dry-run's pre-flight phase (hop started → plan) from its NDJSON events, median of PREFLIGHT_RUNS.
 */
async function runPreflightSixNodes() {
  const lab = await startHomelab({servers: 3, agents: 3, ssh: 'openssh', version: FROM, releases: [TARGET], readyDelayMs: 2000})
  try {
    const samples: number[] = []
    for (let i = 0; i < PREFLIGHT_RUNS + 1; i++) {
      const spawnedAt = Date.now()
      const run = await runNode([RUN_JS, 'k8s', 'upgrade', '--to', TARGET, '--dry-run', '--json', '--log-format', 'json'], {env: {...lab.env, CI: 'true'}, timeoutMs: 60_000})
      if (run.exitCode !== 0) throw new Error(`pre-flight 3+3: the dry-run exited ${run.exitCode}: ${run.stderr.slice(-1500)}`)
      const ms = phases(parseEvents(run.stderr), spawnedAt, Date.now()).preflightMs
      if (i > 0) samples.push(ms) // the first warms the sshd and the disk cache
    }
    const ms = Math.round(median(samples))
    return {nodes: 6, sshServer: 'openssh (one real sshd per node, loopback)', runs: PREFLIGHT_RUNS, ms, runsMs: samples.map(Math.round), targetMs: TARGETS.preflightSixNodesMs, met: ms <= TARGETS.preflightSixNodesMs}
  } finally {
    await lab.stop()
  }
}

async function main() {
  const jsonFile = path.join(REPO_ROOT, 'bench', 'results.json')
  const mdFile = path.join(REPO_ROOT, 'bench', 'RESULTS.md')
  if (process.env.BENCH_RENDER_ONLY) {
    // bench/RESULTS.md again from the last results (after editing bench/notes.md), measuring nothing.
    await writeFile(mdFile, renderResultsMd(JSON.parse(await readFile(jsonFile, 'utf8'))))
    process.stdout.write(`written: ${relative(mdFile)}\n`)
    return
  }
  const wanted = (process.env.BENCH_SCENARIOS ?? 'S,L').split(',').map((x) => x.trim()).filter(Boolean)
  for (const w of wanted) if (w !== 'S' && w !== 'L') throw new Error(`BENCH_SCENARIOS: unknown scenario ${w} (S, L)`)
  if (CPU_PROF) await mkdir(CPU_PROF, {recursive: true})
  const when = new Date().toISOString()
  process.stderr.write('bench: start-up…\n')
  const startup = await runStartup()
  process.stderr.write('bench: pre-flight of 3+3 over sshd…\n')
  const preflight = await runPreflightSixNodes()
  const scenarios: Record<string, Awaited<ReturnType<typeof runScenario>>> = {}
  for (const name of wanted) scenarios[name] = await runScenario(SCENARIOS[name as 'S' | 'L'])
  const cpus = os.cpus()
  const results = {
    when,
    machine: {node: process.version, platform: `${os.platform()} ${os.release()}`, arch: os.arch(), cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memoryGiB: round1(os.totalmem() / 2 ** 30)},
    sshServers: Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [k, v.sshServer])),
    upgrade: {from: FROM, to: TARGET, distribution: 'k3s (embedded etcd: an etcd snapshot on the first server after the Velero backup)'},
    targets: {ratioS: SCENARIOS.S.targets.ratio, ratioL: SCENARIOS.L.targets.ratio, ...TARGETS},
    scenarios,
    preflight,
    startup,
  }
  await writeFile(jsonFile, `${JSON.stringify(results, null, 2)}\n`)
  await writeFile(mdFile, renderResultsMd(results))
  process.stdout.write(`${JSON.stringify(results, null, 2)}\nwritten: ${relative(jsonFile)}, ${relative(mdFile)}\n`)
}

await main()
