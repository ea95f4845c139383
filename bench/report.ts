/**
 * bench/RESULTS.md from the results object: one table per part, each target met or not, and
 * where the time above the physical limit went (the CLI's own phases minus what the cluster
 * needed in each). bench/notes.md, when present, is appended as it is (the profile findings).
 */
import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {REPO_ROOT} from '../test/sim/homelab.js'

interface ScenarioResult {
  servers: number
  agents: number
  concurrency: number
  restartToReadyMs: number
  backupMs: number
  podTerminationMs: number
  sshServer: string
  rounds: number
  physicalLimitMs: number
  wallMs: number
  wallRunsMs: number[]
  ratio: number
  ratioTarget: number
  ratioMet: boolean
  peakRssMiB: number | null
  peakRssSource: string
  preflightMs: number
  phasesMs: Record<string, number>
  serverActionMs?: Record<string, number>
  agentActionMs?: Record<string, number>
  reactionMs: {n: number; p50: number; p95: number; max: number}
  reactionP50Met: boolean
  loadAvgAtStart: number
}

interface Results {
  when: string
  machine: {node: string; platform: string; cpus: number; cpuModel: string; memoryGiB: number}
  upgrade: {from: string; to: string; distribution: string}
  targets: {reactionP50Ms: number; peakRssMiBL: number; startupMs: number; preflightSixNodesMs?: number; preflightLMs?: number}
  scenarios: Record<string, ScenarioResult>
  /** Absent in results written before it was measured. */
  preflight?: {nodes: number; sshServer: string; runs: number; ms: number; runsMs: number[]; targetMs: number; met: boolean}
  startup: {runs: number; nodeMs: number; helpMs: number; versionMs: number; upgradeHelpMs: number; planGenerateOfflineMs: number; planGenerateArgs: string; targetMs: number; met: boolean}
}

const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '–')
const ok = (met: boolean) => (met ? 'met' : '**missed**')

/** Time above what the cluster needed, phase by phase (the waits the settings impose taken out). */
export function gapBreakdown(r: ScenarioResult): Array<[string, number]> {
  const p = r.phasesMs
  const waves = Math.ceil(r.agents / r.concurrency)
  return [
    ['start-up (spawn → first event)', p.startupMs],
    ['target, inventory (→ pre-flight)', p.beforePreflightMs],
    ['pre-flight', p.preflightMs],
    ['lock, journal (plan → saga)', p.planToSagaMs],
    [`backup step − ${s(r.backupMs)} Velero`, p.backupMs - r.backupMs],
    [`servers step − ${r.servers} × ${s(r.restartToReadyMs)}`, p.serversMs - r.servers * r.restartToReadyMs],
    [`agents step − ${waves} × ${s(r.podTerminationMs + r.restartToReadyMs)}`, p.agentsMs - waves * (r.podTerminationMs + r.restartToReadyMs)],
    ['other saga steps, between steps', p.otherStepsMs],
    ['after the saga (end state, result, exit)', p.afterSagaMs],
  ]
}

export function renderResultsMd(results: Results): string {
  const lines: string[] = []
  const m = results.machine
  lines.push('# Benchmark results (`npm run bench`)', '')
  lines.push(`Measured ${results.when} on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}; the machine is shared, so expect noise.`)
  lines.push(`Upgrade ${results.upgrade.from} → ${results.upgrade.to}, ${results.upgrade.distribution}. The CLI is the real process (\`bin/run.js k8s upgrade --yes --json --log-format json\`); the simulated homelab runs in the bench process.`, '')

  lines.push('## Upgrades', '')
  lines.push('| scenario | nodes | c | SSH server | physical limit | wall (median) | ratio | target | pre-flight | reaction p50 / p95 | peak RSS |')
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const [name, r] of Object.entries(results.scenarios)) {
    lines.push(
      `| ${name} | ${r.servers}+${r.agents} | ${r.concurrency} | ${r.sshServer.split(' ')[0]} | ${s(r.physicalLimitMs)} | ${s(r.wallMs)} (${r.wallRunsMs.map((x) => (x / 1000).toFixed(1)).join(', ')}) | ${r.ratio.toFixed(3)} | ≤ ${r.ratioTarget} ${ok(r.ratioMet)} | ${s(r.preflightMs)} | ${r.reactionMs.p50} / ${r.reactionMs.p95} ms | ${r.peakRssMiB?.toFixed(0) ?? '–'} MiB |`,
    )
  }
  lines.push('')
  lines.push('Physical limit = backup + Σ server restarts (one at a time, not drained) + ⌈agents / c⌉ × (drain + restart); a drain evicts a node\'s pods at once, so it lasts one pod\'s termination (0.2 s). Settings: restart-to-Ready 2 s (from the node’s service manager taking the restart, `systemctl restart`, to the Node turning Ready; the simulation’s own stop report and fake binary, node processes, start inside those 2 s as a real k3s’s start-up does), Velero backup 1 s, 5 pods per agent (5 ReplicaSets, one pod each per agent, no PDB) each stopping 0.2 s after its eviction.')
  lines.push(`Reaction = from the simulated kubelet marking a node Ready at the target (change log) to the CLI's next write for that node, its uncordon (audit log). Peak RSS: ${Object.values(results.scenarios)[0]?.peakRssSource ?? '–'} of the CLI process, the largest of the rounds.`)
  for (const [name, r] of Object.entries(results.scenarios)) lines.push(`SSH in ${name}: ${r.sshServer}; load average (1 min) when it started: ${r.loadAvgAtStart} on ${m.cpus} cores.`)
  lines.push('')

  lines.push('## Where the time above the limit goes', '')
  const names = Object.keys(results.scenarios)
  lines.push(`| part | ${names.join(' | ')} |`)
  lines.push(`| --- | ${names.map(() => '---').join(' | ')} |`)
  const breakdowns = names.map((n) => gapBreakdown(results.scenarios[n]))
  for (let i = 0; i < (breakdowns[0]?.length ?? 0); i++) {
    lines.push(`| ${breakdowns[0][i][0].replace(/ − .*/, ' (minus its waits)')} | ${breakdowns.map((b) => s(b[i][1])).join(' | ')} |`)
  }
  lines.push(`| **wall − limit** | ${names.map((n) => s(results.scenarios[n].wallMs - results.scenarios[n].physicalLimitMs)).join(' | ')} |`)
  lines.push('')
  lines.push('Phases come from the CLI\'s NDJSON event times (medians over the rounds); "minus its waits" takes out what the settings impose on that step.', '')

  const columns = names.flatMap((n) => [[`${n} server`, results.scenarios[n].serverActionMs], [`${n} agent`, results.scenarios[n].agentActionMs]] as const).filter(([, v]) => v)
  if (columns.length > 0) {
    lines.push('### One node action, cut at the saga\'s log lines (median ms)', '')
    lines.push(`| segment | ${columns.map(([c]) => c).join(' | ')} |`)
    lines.push(`| --- | ${columns.map(() => '---').join(' | ')} |`)
    const segments = [...new Set(columns.flatMap(([, v]) => Object.keys(v ?? {})))]
    for (const seg of segments) lines.push(`| ${seg} | ${columns.map(([, v]) => (v?.[seg] === undefined ? '–' : String(v[seg]))).join(' | ')} |`)
    lines.push('')
    lines.push('start→cordoned: API read, waiting for the node’s background staging (binary pushed and verified beside the live one) if it is not done, journal; cordoned→swapped: the drain (servers are not drained) and the swap, one rename over SSH; swapped→Ready: the restart over SSH and the 2 s the simulated node takes to turn Ready; then the uncordon, and for agents the wait for their workloads.', '')
  }

  const pf = results.preflight
  if (pf) {
    lines.push('## Pre-flight of 6 nodes', '')
    lines.push(`3 servers + 3 agents, ${pf.sshServer}: the dry-run's pre-flight (hop started → plan), median of ${pf.runs} after one warm-up: **${s(pf.ms)}** (${pf.runsMs.map((x) => (x / 1000).toFixed(2)).join(', ')}).`, '')
  }

  lines.push('## Start-up', '')
  const st = results.startup
  lines.push(`Median of ${st.runs} runs each (after two warm-ups), interleaved, no homelab.yaml in reach.`, '')
  lines.push('| command | median |', '| --- | --- |')
  lines.push(`| \`node -e 0\` | ${st.nodeMs} ms |`)
  lines.push(`| \`homelab --help\` | ${st.helpMs} ms |`)
  lines.push(`| \`homelab --version\` | ${st.versionMs} ms |`)
  lines.push(`| \`homelab k8s upgrade --help\` | ${st.upgradeHelpMs} ms |`)
  lines.push(`| \`homelab ${st.planGenerateArgs}\` | ${st.planGenerateOfflineMs} ms |`)
  lines.push('')

  lines.push('## Targets', '')
  const t = results.targets
  for (const [name, r] of Object.entries(results.scenarios)) {
    lines.push(`- ${name}: ratio ${r.ratio.toFixed(3)} ≤ ${r.ratioTarget}: ${ok(r.ratioMet)}; reaction p50 ${r.reactionMs.p50} ms ≤ ${t.reactionP50Ms} ms: ${ok(r.reactionP50Met)}`)
  }
  const l = results.scenarios.L
  if (l) lines.push(`- L: peak RSS ${l.peakRssMiB?.toFixed(0) ?? '–'} MiB ≤ ${t.peakRssMiBL} MiB: ${ok(l.peakRssMiB !== null && l.peakRssMiB <= t.peakRssMiBL)}`)
  if (l && t.preflightLMs !== undefined) lines.push(`- L: pre-flight of 203 nodes ${s(l.preflightMs)} ≤ ${s(t.preflightLMs)}: ${ok(l.preflightMs <= t.preflightLMs)}`)
  if (pf) lines.push(`- pre-flight of 6 nodes over sshd ${s(pf.ms)} ≤ ${s(pf.targetMs)}: ${ok(pf.met)}`)
  lines.push(`- start-up: slowest of the four ${Math.max(st.helpMs, st.versionMs, st.upgradeHelpMs, st.planGenerateOfflineMs)} ms ≤ ${st.targetMs} ms: ${ok(st.met)}`)
  lines.push('')

  const notes = path.join(REPO_ROOT, 'bench', 'notes.md')
  if (existsSync(notes)) lines.push(readFileSync(notes, 'utf8').trimEnd(), '')
  return `${lines.join('\n')}\n`
}
