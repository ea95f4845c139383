/**
 * `homelab init` (issue 10) against the simulated homelab: the nodes (split roles, arch) and the
 * distribution come from the API, how to reach them from ~/.ssh/config, where the binary is from
 * the node itself; the file it writes is accepted by `upgrade --dry-run`. Nodes that do not
 * answer are comments saying why; nothing is overwritten without --force; no API write.
 */
import assert from 'node:assert/strict'
import {access, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'

import {parseConfig} from '../../src/config/load.js'
import {sshConfigMatches} from '../../src/init/init.js'
import {REPO_ROOT, type Homelab} from '../sim/homelab.js'
import {lab, TO} from '../upgrade/helpers.js'

describe('homelab init against the simulated homelab', () => {
  let homelab: Homelab
  let file: string
  let sshConfig: string
  const cleanups: Array<() => Promise<void>> = []
  before(async () => {
    homelab = await lab((fn) => cleanups.push(fn), {
      nodes: [
        {name: 'server-1', role: 'server'},
        {name: 'etcd-1', role: 'server', serverKind: 'etcd'},
        {name: 'agent-1', role: 'agent', arch: 'arm64'},
        {name: 'agent-2', role: 'agent'},
      ],
      channels: {stable: TO, latest: TO},
    })
    file = path.join(homelab.root, 'init', 'homelab.yaml')
    // Three nodes by name (an alias with HostName and Port), agent-2 by its address.
    const alias = (name: string) => `Host ${name}\n  HostName ${homelab.node(name).address}\n  Port ${homelab.node(name).ssh.port}\n  IdentityFile ${homelab.identityPath}\n`
    sshConfig = [alias('server-1'), alias('etcd-1'), alias('agent-1'), `Host ${homelab.node('agent-2').address}\n  Port ${homelab.node('agent-2').ssh.port}\n`].join('\n')
    await writeFile(path.join(homelab.env.HOME, '.ssh', 'config'), sshConfig)
  })
  after(async () => {
    for (const fn of cleanups) await fn()
  })

  const init = (args: string[]) => homelab.cli(['init', '--kubeconfig', homelab.kubeconfigPath, ...args])

  test('writes every node that answers, with where each setting came from, and upgrade --dry-run accepts it', async () => {
    const writesBefore = homelab.api.audit.writes().length
    const result = await init(['--config', file])
    assert.equal(result.exitCode, 0, `${result.stdout}\n${result.stderr}`)
    assert.equal(homelab.api.audit.writes().length, writesBefore, 'init wrote nothing to the cluster')
    const text = await readFile(file, 'utf8')
    const lines = text.split('\n')
    assert.equal(lines[0], `# yaml-language-server: $schema=${path.join(REPO_ROOT, 'homelab.schema.json')}`)
    assert.match(text, /^distribution: k3s {2}# detected from kubelet v1\.31\.4\+k3s1 on every node$/m)
    assert.match(text, new RegExp(`^  kubeconfig: ${homelab.kubeconfigPath}\\n  context: homelab-sim$`, 'm'))
    assert.match(text, /^ {2}become: sudo {2}# sudo -n worked/m)

    const config = parseConfig(text, file)
    const byName = Object.fromEntries(config.nodes.map((n) => [n.name, n]))
    assert.deepEqual(config.nodes.map((n) => n.name), ['etcd-1', 'server-1', 'agent-1', 'agent-2'])
    assert.deepEqual(config.nodes.map((n) => n.role), ['server', 'server', 'agent', 'agent'])
    assert.equal(byName['server-1'].host, 'server-1', 'a node with a Host alias is reached by it')
    assert.equal(byName['agent-2'].host, homelab.node('agent-2').address, 'else by its InternalIP')
    for (const node of homelab.nodes) assert.equal(byName[node.spec.name].install?.binDir, node.fixture.binDir, node.spec.name)
    // The facts the schema has no key for are comments.
    assert.match(text, new RegExp(`host: server-1 {2}# ~/.ssh/config: \\S+@${homelab.node('server-1').address.replaceAll('.', '\\.')} port ${homelab.node('server-1').ssh.port}`))
    assert.match(text, /name: etcd-1\n {4}host: etcd-1 .*\n {4}role: server {2}# etcd only, InternalIP 127\.\S+, amd64, kubelet v1\.31\.4\+k3s1/)
    assert.match(text, /name: agent-1\n.*\n {4}role: agent {2}# InternalIP \S+, arm64, kubelet v1\.31\.4\+k3s1\n {4}install: \{binDir: \S+\} {2}# from the k3s-agent service/)

    assert.match(result.stdout, /^NODE\s+ROLE\s+HOST\s+ARCH\s+KUBELET\s+SSH$/m)
    assert.match(result.stdout, /^etcd-1\s+server \(etcd\)\s+etcd-1\s+amd64\s+v1\.31\.4\+k3s1\s+ok, sudo ok/m)
    assert.match(result.stdout, new RegExp(`Wrote ${file}: 4 node\\(s\\)\\.`))
    assert.match(result.stdout, new RegExp(`Next: homelab k8s upgrade --to stable --dry-run --config ${file}$`, 'm'))

    // The next command, as printed, accepts the file. The one thing init cannot know is added as a
    // user of an air-gapped lab would: where the release mirror is (here the simulation's servers).
    await writeFile(file, `${text}install: {releaseUrl: ${homelab.release.url}, channelUrl: ${homelab.channels.url}}\n`)
    const dry = await homelab.cli(['k8s', 'upgrade', '--to', 'stable', '--dry-run', '--config', file])
    assert.equal(dry.exitCode, 0, `${dry.stdout}\n${dry.stderr}`)
    assert.match(dry.stdout, /Dry run: pre-flight passed; nothing was changed/)
    assert.match(dry.stdout, /server-1 \(etcd\+control-plane, amd64, systemd\): v1\.31\.4\+k3s1 → v1\.31\.5\+k3s1/)
    assert.match(dry.stdout, /agent-1 \(arm64, systemd\)/)
  })

  test('never overwrites without --force; --stdout and --json print instead of writing', async () => {
    const before = await readFile(file, 'utf8')
    const refused = await init(['--config', file])
    assert.equal(refused.exitCode, 2)
    assert.match(refused.stderr, /^homelab: .*homelab\.yaml exists; homelab init does not overwrite it \(fix: pass --force/)
    const printed = await init(['--config', file, '--stdout'])
    assert.equal(printed.exitCode, 0, printed.stderr)
    // The same file but for the time it was written.
    const withoutTime = (t: string) => t.replace(/on \S+Z from/, 'on … from')
    assert.equal(withoutTime(printed.stdout), withoutTime(before.replace(/^install: \{releaseUrl.*\n/m, '')))
    const json = await init(['--config', file, '--json'])
    assert.equal(json.exitCode, 0, json.stderr)
    const out = JSON.parse(json.stdout) as {written: boolean; file: string; distribution: string; nodes: Array<{name: string; ok: boolean; arch: string}>; next: string}
    assert.equal(out.written, false)
    assert.equal(out.file, file)
    assert.equal(out.nodes.find((n) => n.name === 'agent-1')?.arch, 'arm64')
    assert.equal(await readFile(file, 'utf8'), before, 'nothing was written')
    const forced = await init(['--config', file, '--force'])
    assert.equal(forced.exitCode, 0, forced.stderr)
  })

  test('unknown host keys: refused (nothing written) unless --accept-new-host-keys; a node that does not answer is a comment saying why', async () => {
    const other = path.join(homelab.root, 'init', 'second.yaml')
    await writeFile(homelab.knownHostsPath, '')
    const refused = await init(['--config', other])
    assert.equal(refused.exitCode, 1, refused.stdout)
    assert.match(refused.stderr, /no server answered over SSH.*nothing was written/)
    assert.match(refused.stderr, /etcd-1: host key for \S+ is not in known_hosts \(SHA256:/)
    await assert.rejects(access(other))

    await homelab.node('agent-2').ssh.stop()
    const accepted = await init(['--config', other, '--accept-new-host-keys'])
    assert.equal(accepted.exitCode, 0, `${accepted.stdout}\n${accepted.stderr}`)
    const text = await readFile(other, 'utf8')
    assert.match(text, /^ {2}# agent-2: left out, .*(refused|connect|closed)/im)
    assert.match(text, new RegExp(`^  # - \\{name: agent-2, host: ${homelab.node('agent-2').address.replaceAll('.', '\\.')}, role: agent\\}$`, 'm'))
    assert.deepEqual(parseConfig(text, other).nodes.map((n) => n.name), ['etcd-1', 'server-1', 'agent-1'])
    assert.match(accepted.stdout, /3 node\(s\); 1 left out, each with a comment saying why/)
    assert.match(await readFile(homelab.knownHostsPath, 'utf8'), /ssh-ed25519|ecdsa|rsa/, 'the accepted keys were recorded')
  })
})

test('a node matches ~/.ssh/config when a Host pattern of its own does, not through Host * alone', () => {
  const text = 'Host server-1 server-2\n  User pi\nHost 10.0.0.*\n  ProxyJump bastion\nHost *\n  ServerAliveInterval 30\n'
  assert.equal(sshConfigMatches(text, 'server-1'), true)
  assert.equal(sshConfigMatches(text, '10.0.0.21'), true)
  assert.equal(sshConfigMatches(text, 'agent-1'), false)
  assert.equal(sshConfigMatches(text, '192.168.1.5'), false)
  assert.equal(sshConfigMatches(undefined, 'server-1'), false)
})
