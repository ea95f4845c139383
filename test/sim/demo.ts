/**
 * `npm run demo`: start the simulated homelab (3 servers with embedded etcd, 3 agents, a web app
 * under a PodDisruptionBudget, a DaemonSet, emptyDir pods), upgrade it with the real CLI, show
 * `homelab k8s status`, stop everything. `npm run demo -- --json` prints only the upgrade's JSON.
 */
import {spawn} from 'node:child_process'
import path from 'node:path'

import {REPO_ROOT, startHomelab, type Homelab} from './homelab.js'

const FROM = 'v1.31.4+k3s1'
const TO = 'v1.31.5+k3s1'

function runCli(lab: Homelab, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {env: {...lab.env, TERM: process.env.TERM ?? 'xterm'}, stdio: 'inherit'})
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
}

async function main(): Promise<number> {
  const json = process.argv.includes('--json')
  const say = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`)
  }
  say('Starting the simulated homelab (3 servers, 3 agents)…')
  const started = Date.now()
  const lab = await startHomelab({workloads: true, version: FROM, releases: [TO], channels: {stable: TO, latest: TO, 'v1.31': TO}})
  let exitCode = 1
  const stop = async () => {
    await lab.stop()
  }
  process.once('SIGINT', () => void stop().then(() => process.exit(130)))
  try {
    say(`Homelab up in ${((Date.now() - started) / 1000).toFixed(1)}s: nodes over ${lab.nodes[0].ssh.kind === 'openssh' ? 'OpenSSH sshd' : 'the in-process SSH server'} on loopback, API at ${lab.api.url}`)
    say(`Cluster file: ${lab.configPath}\n`)
    say(`$ homelab k8s upgrade --to ${TO} --yes`)
    exitCode = await runCli(lab, ['k8s', 'upgrade', '--to', TO, '--yes', ...(json ? ['--json'] : [])])
    if (!json) {
      say('\n$ homelab k8s status')
      await runCli(lab, ['k8s', 'status'])
    }
  } finally {
    await stop()
  }
  say(`\nStopped the homelab. The upgrade exited ${exitCode}.`)
  return exitCode
}

process.exitCode = await main()
