/**
 * A look at pre-flight alone at scenario L's size (3+200, in-process SSH): `--dry-run` timed, its
 * pauses between its events printed (longer than BENCH_GAP_MS, default 300), the CLI CPU-profiled
 * when BENCH_CPU_PROF is a dir. BENCH_AGENTS (200) and BENCH_SSH (inproc | openssh) set the size
 * and the SSH server. Not part of `npm run bench`: `npx tsx bench/preflight-probe.ts`.
 */
import {spawn} from 'node:child_process'
import path from 'node:path'

import {REPO_ROOT, startHomelab} from '../test/sim/homelab.js'

const agents = Number(process.env.BENCH_AGENTS ?? 200)
const prof = process.env.BENCH_CPU_PROF
const lab = await startHomelab({servers: 3, agents, ssh: (process.env.BENCH_SSH as 'openssh' | 'inproc' | undefined) ?? 'inproc', version: 'v1.31.4+k3s1', releases: ['v1.31.5+k3s1'], readyDelayMs: 2000})
try {
  for (let round = 1; round <= 2; round++) {
    const started = performance.now()
    const args = [...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), path.join(REPO_ROOT, 'bin', 'run.js'), 'k8s', 'upgrade', '--to', 'v1.31.5+k3s1', '--dry-run', '--json', '--log-format', 'json']
    const child = spawn(process.execPath, args, {env: lab.env, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    const events = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as {time?: string; type?: string; message?: string})
    const times = events.flatMap((e) => (e.time ? [Date.parse(e.time)] : []))
    process.stdout.write(`round ${round}: exit ${code}, ${((performance.now() - started) / 1000).toFixed(2)} s wall, events span ${((Math.max(...times) - Math.min(...times)) / 1000).toFixed(2)} s\n`)
    // The pauses: where pre-flight waits on something.
    for (let i = 1; i < events.length; i++) {
      const gap = Date.parse(events[i]!.time ?? '') - Date.parse(events[i - 1]!.time ?? '')
      if (gap > Number(process.env.BENCH_GAP_MS ?? 300)) process.stdout.write(`  ${gap} ms before: ${JSON.stringify(events[i]).slice(0, 160)}\n`)
    }
    const byType = new Map<string, number>()
    for (const e of events) byType.set(e.type ?? '?', (byType.get(e.type ?? '?') ?? 0) + 1)
    process.stdout.write(`  events: ${JSON.stringify(Object.fromEntries(byType))}\n`)
  }
} finally {
  await lab.stop()
}
