/**
 * Issue 11 §1: pre-flight asks each node everything in one SSH exec (one probe script), and the
 * connection pre-flight opens is the one the saga then uses. Counted from the nodes' own SSH
 * server logs (OpenSSH's `Starting session: command`, the in-process server's `exec`), so what
 * is counted is what crossed the wire. The probe programs' text is pinned by golden files.
 */
import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

import {AS_ROOT_PROBE, BINARY_PROBE} from '../../src/node/binary-probe.js'
import {PACKAGE_PROBE} from '../../src/node/package-probe.js'
import {parseProbeOutput, probeProgram} from '../../src/node/probe.js'
import type {Homelab} from '../sim/homelab.js'
import {readCommandLog} from '../sim/node-fixture.js'
import {AGENTS, SERVERS, TO, lab} from './helpers.js'
import {KTO, kubeadmLab} from './kubeadm-helpers.js'

interface KubeadmNode {
  name: string
  packageManager: string
  packagesTarget: Record<string, string>
  repositoryBefore: string
  repositoryAfter: string
}

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'golden')

/** Per node: the commands its SSH server was asked to run, and the logins it accepted. */
async function sshActivity(homelab: Homelab): Promise<Map<string, {execs: string[]; logins: number}>> {
  const activity = new Map<string, {execs: string[]; logins: number}>()
  for (const node of homelab.nodes) {
    const log = await readFile(node.ssh.logFile, 'utf8').catch(() => '')
    const execs = node.ssh.kind === 'openssh'
      ? log.split('\n').filter((l) => /Starting session: command/.test(l))
      : log.split('\n').flatMap((l) => {
          const m = /\bexec (".*")$/.exec(l)
          return m ? [JSON.parse(m[1]) as string] : []
        })
    activity.set(node.spec.name, {execs, logins: (log.match(/Accepted publickey/g) ?? []).length})
  }
  return activity
}

function assertOnePerNode(activity: Map<string, {execs: string[]; logins: number}>, extra: Record<string, number> = {}): void {
  for (const [name, {execs, logins}] of activity) {
    assert.equal(execs.length, 1 + (extra[name] ?? 0), `${name}: ${execs.length} SSH execs in pre-flight:\n${execs.join('\n')}`)
    assert.equal(logins, 1, `${name}: ${logins} SSH logins`)
  }
}

test('k3s pre-flight (--dry-run): one SSH exec and one login per node, the plan as before', async (t) => {
  const homelab = await lab(t, {ssh: 'auto'})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const plan = JSON.parse(run.stdout).plans[0] as {servers: Array<{name: string; serviceManager: string; installedVersion: string}>; agents: Array<{name: string}>}
  assert.deepEqual(plan.servers.map((s) => s.name), SERVERS)
  assert.deepEqual(plan.agents.map((a) => a.name), AGENTS)
  assert.ok(plan.servers.every((s) => s.serviceManager === 'systemd' && s.installedVersion === 'v1.31.4+k3s1'))
  assertOnePerNode(await sshActivity(homelab))
  // What the probe ran is still only read-only pre-flight: one sudo for the reads as root (the .skip files listed among them), the service manager asked.
  const server = (await readCommandLog(homelab.node('server-1').fixture)).map((e) => `${e.tool} ${e.argv.join(' ')}`)
  const asRoot = server.filter((line) => line.startsWith('sudo '))
  assert.equal(asRoot.length, 1, server.join('\n'))
  assert.ok(asRoot[0]!.startsWith(`sudo -n -- sh -c ${AS_ROOT_PROBE} homelab homelab-probe-`), asRoot[0])
  assert.match(asRoot[0]!, / none \S+\/server\/manifests \S+\/agent\/images \S+\/registries\.yaml$/)
  assert.ok(server.some((line) => line.startsWith('find . -type f -name *.skip')) || !server.some((line) => line.startsWith('find')), server.join('\n'))
  assert.ok(server.includes(`systemctl show -p FragmentPath --value k3s`), server.join('\n'))
})

test('a full k3s upgrade logs in to each node once: the saga reuses the connections pre-flight opened', async (t) => {
  const homelab = await lab(t, {ssh: 'auto'})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  for (const [name, {logins}] of await sshActivity(homelab)) assert.equal(logins, 1, `${name}: ${logins} SSH logins`)
})

test('kubeadm pre-flight (--dry-run, apt and dnf nodes): one SSH exec per node, plus kubeadm upgrade plan on the first control plane', async (t) => {
  const homelab = await kubeadmLab(t, {
    ssh: 'auto',
    nodes: [
      {name: 'server-1', role: 'server'},
      {name: 'server-2', role: 'server', aptSourceFormat: 'deb822'},
      {name: 'server-3', role: 'server', packageManager: 'dnf'},
      {name: 'agent-1', role: 'agent'},
      {name: 'agent-2', role: 'agent', packageManager: 'dnf', held: false},
      {name: 'agent-3', role: 'agent'},
    ],
  })
  const run = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--dry-run', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const plan = JSON.parse(run.stdout).plans[0] as {servers: KubeadmNode[]; agents: KubeadmNode[]}
  for (const node of [...plan.servers, ...plan.agents]) {
    assert.ok(node.packagesTarget.kubeadm.startsWith('1.32.4-'), JSON.stringify(node))
    assert.match(node.repositoryAfter, /\/v1\.32\//, node.name)
    assert.equal(node.repositoryBefore.replaceAll('/v1.31/', '/v1.32/'), node.repositoryAfter, node.name)
  }
  assert.deepEqual(Object.fromEntries([...plan.servers, ...plan.agents].map((n) => [n.name, n.packageManager])), {'server-1': 'apt', 'server-2': 'apt', 'server-3': 'dnf', 'agent-1': 'apt', 'agent-2': 'dnf', 'agent-3': 'apt'})
  // `kubeadm upgrade plan` stays a command of its own: it runs only with the cluster's answers to the checks before it.
  assertOnePerNode(await sshActivity(homelab), {'server-1': 1})
  const plans = (await readCommandLog(homelab.node('server-1').fixture)).filter((e) => e.tool === 'kubeadm' && e.argv[1] === 'plan')
  assert.equal(plans.length, 1)
  // The offered-versions query ran inside the probe, once per node (not asked again on its own).
  for (const node of homelab.nodes) {
    const queries = (await readCommandLog(node.fixture)).filter((e) => (e.tool === 'apt-get' && e.argv.includes('update')) || (e.tool === 'dnf' && e.argv.includes('--showduplicates')))
    assert.equal(queries.length, 1, `${node.spec.name}: the repository was asked ${queries.length} times`)
  }
})

test('the probe programs are the golden files (a reviewer reads what a node runs), and a step\'s output is framed exactly', async () => {
  for (const [file, text] of [['binary-probe.sh', BINARY_PROBE], ['package-probe.sh', PACKAGE_PROBE]] as const) {
    const golden = path.join(GOLDEN, file)
    if (process.env.UPDATE_GOLDEN) await writeFile(golden, text)
    assert.equal(text, await readFile(golden, 'utf8'), `${file} changed: review it, then UPDATE_GOLDEN=1`)
  }
  const m = 'homelab-probe-00'
  const out = `${m} out a\nx\n\n${m} exit a 3\n${m} err a\ne\n${m} end a\n${m} out b\nno newline\n${m} exit b 0\n${m} err b\n\n${m} end b\n`
  assert.deepEqual([...parseProbeOutput(out, m)], [['a', {stdout: 'x\n', exitCode: 3, stderr: 'e'}], ['b', {stdout: 'no newline', exitCode: 0, stderr: ''}]])
})

test('a step that ran a probe program of its own (the reads as root): its frames are steps as well, its own result kept', async () => {
  const {execFile} = await import('node:child_process')
  const m = 'homelab-probe-0123456789abcdef'
  // The real prelude twice over, as the binary probe runs it: an outer program whose step runs an inner one.
  const inner = probeProgram({}, 'sec skip sh -c \'echo listed; echo warned >&2; exit 4\'\nsec images printf "%s" "a b"\nexit 0\n')
  const outer = probeProgram({INNER: inner}, 'sec root sh -c "$INNER" homelab "$M" none\nsec arch echo x86_64\n')
  const stdout = await new Promise<string>((resolve, reject) => execFile('sh', ['-c', outer, 'homelab', m, 'none'], (error, out) => (error ? reject(error) : resolve(out))))
  const steps = parseProbeOutput(stdout, m)
  assert.deepEqual([...steps.keys()], ['root', 'skip', 'images', 'arch'])
  assert.deepEqual(steps.get('skip'), {stdout: 'listed\n', exitCode: 4, stderr: 'warned\n'})
  assert.deepEqual(steps.get('images'), {stdout: 'a b', exitCode: 0, stderr: ''})
  assert.equal(steps.get('root')?.exitCode, 0)
  assert.deepEqual(steps.get('arch'), {stdout: 'x86_64\n', exitCode: 0, stderr: ''})
})

test('a snippet that exits cannot be run with snip (its exit would end the step before its status is framed)', () => {
  assert.throws(() => probeProgram({S: 'echo a; exit 0'}, 'sec s snip "$S"\n'), /probe snippet S exits; run it with sh -c/)
  assert.doesNotThrow(() => probeProgram({S: 'echo a; exit 0'}, 'sec s sh -c "$S" homelab\n'))
})
