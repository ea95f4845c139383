/**
 * Benchmarks on the simulated homelab; results go to bench/results/<name>.json.
 *   npm run bench
 * Measures: homelab start/stop (goal: a 3+3 homelab in a few seconds), SSH command latency
 * through the product's transport, `homelab k8s status`, and a full 3+3 upgrade end to end.
 * Loops are bounded: a fixed number of rounds, loopback only.
 */
import {mkdir, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {openSession} from '../src/session.js'
import {REPO_ROOT, startHomelab} from '../test/sim/homelab.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b)
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length
  return {n: sorted.length, min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1), mean: Math.round(mean)}
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now()
  const value = await fn()
  return [Math.round(performance.now() - start), value]
}

const results: Record<string, unknown> = {
  when: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  rounds: ROUNDS,
}

const start: number[] = []
const stop: number[] = []
const upgrade: number[] = []
const status: number[] = []
const exec: number[] = []
let sshKind = ''
for (let round = 0; round < ROUNDS; round++) {
  const [startMs, lab] = await timed(() => startHomelab({workloads: true, releases: ['v1.31.5+k3s1']}))
  start.push(startMs)
  sshKind = lab.nodes[0].ssh.kind
  try {
    const session = await openSession({configPath: lab.configPath, env: lab.env, home: lab.env.HOME})
    const inventory = await session.loadInventory()
    const transport = await session.connect(inventory.nodes[0])
    await transport.run(['true'])
    for (let i = 0; i < 10; i++) exec.push((await timed(() => transport.run(['true'])))[0])
    await session.close()

    const [statusMs, statusResult] = await timed(() => lab.cli(['k8s', 'status', '--json']))
    if (statusResult.exitCode !== 0) throw new Error(`status failed: ${statusResult.stderr}`)
    status.push(statusMs)
    const [upgradeMs, result] = await timed(() => lab.cli(['k8s', 'upgrade', '--to', 'v1.31.5+k3s1', '--yes', '--json']))
    if (result.exitCode !== 0) throw new Error(`upgrade failed (${result.exitCode}): ${result.stderr.slice(-2000)}`)
    upgrade.push(upgradeMs)
  } finally {
    stop.push((await timed(() => lab.stop()))[0])
  }
}
results.sshServer = sshKind
results.homelabStartMs = stats(start)
results.homelabStopMs = stats(stop)
results.sshExecTrueMs = stats(exec)
results.statusCliMs = stats(status)
results.upgrade3plus3Ms = stats(upgrade)

const dir = path.join(REPO_ROOT, 'bench', 'results')
await mkdir(dir, {recursive: true})
const file = path.join(dir, 'upgrade.json')
await writeFile(file, `${JSON.stringify(results, null, 2)}\n`)
process.stdout.write(`${JSON.stringify(results, null, 2)}\nwritten to ${path.relative(process.cwd(), file)}\n`)
