import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {test} from 'node:test'

import {startHomelab} from './homelab.js'
import {requireSshdInCi} from './require-sshd.js'

/** Command lines of every process that mentions `text` (Linux /proc). */
function processesMentioning(text: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], {encoding: 'utf8'})
  return out.split('\n').filter((line) => line.includes(text) && !line.includes('ps -eo'))
}

test('a 3+3 homelab starts, answers, and stops leaving no process or file behind', async () => {
  requireSshdInCi()
  const lab = await startHomelab({workloads: true})
  const root = lab.root
  try {
    assert.equal(lab.nodes.length, 6)
    assert.ok(processesMentioning(root).length >= 6, 'every node has its own sshd running from the homelab dir')
    const status = await lab.cli(['k8s', 'status', '--json'])
    assert.equal(status.exitCode, 0, status.stderr)
    assert.equal(JSON.parse(status.stdout).nodes.filter((n: {ssh: {reachable: boolean}}) => n.ssh.reachable).length, 6)
  } finally {
    await lab.stop()
  }
  assert.deepEqual(processesMentioning(root), [])
  assert.equal(existsSync(root), false)
})

test('the in-process SSH server serves the same homelab where no sshd is installed', async () => {
  const lab = await startHomelab({servers: 1, agents: 1, ssh: 'inproc'})
  try {
    assert.equal(lab.nodes[0].ssh.kind, 'inproc')
    const status = await lab.cli(['k8s', 'status', '--json'])
    assert.equal(status.exitCode, 0, status.stderr)
    const nodes = JSON.parse(status.stdout).nodes
    assert.deepEqual(nodes.map((n: {installedVersion: string}) => n.installedVersion), ['v1.31.4+k3s1', 'v1.31.4+k3s1'])
  } finally {
    await lab.stop()
  }
})
