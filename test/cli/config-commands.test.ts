/**
 * `homelab config show` and `homelab config schema` (issue 10), run as built (`npm run build`
 * first) in a home of its own: a cluster file, a ~/.ssh/config and a kubeconfig holding a token.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir, userInfo} from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {promisify} from 'node:util'

import {configJsonSchema} from '../../src/config/schema-json.js'
import {maskSecret} from '../../src/config/show.js'
import {REPO_ROOT} from '../sim/homelab.js'

const run = promisify(execFile)
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.secret-token-value'

let home: string
before(async () => {
  home = await mkdtemp(path.join(tmpdir(), 'homelab-config-'))
  await mkdir(path.join(home, '.ssh'))
  await writeFile(path.join(home, '.ssh', 'config'), 'Host server-1\n  HostName 10.0.0.11\n  User pi\n  Port 2222\n\nHost 10.0.0.*\n  ProxyJump ops@bastion\n')
  await writeFile(path.join(home, 'kubeconfig'), `apiVersion: v1
kind: Config
current-context: lab
contexts: [{name: lab, context: {cluster: lab, user: admin}}, {name: staging, context: {cluster: lab, user: admin}}]
clusters: [{name: lab, cluster: {server: 'https://10.0.0.11:6443'}}]
users: [{name: admin, user: {token: ${TOKEN}}}]
`)
  await writeFile(path.join(home, 'homelab.yaml'), `kubernetes:
  kubeconfig: kubeconfig
ssh:
  connectTimeout: 5s
upgrade:
  drain: {force: true}
nodes:
  - {name: server-1, host: server-1, role: server}
  - {name: agent-1, host: 10.0.0.21, role: agent, ssh: {port: 2200, user: admin}}
`)
})
after(() => rm(home, {recursive: true, force: true}))

async function homelab(args: string[], env: Record<string, string> = {}) {
  try {
    const {stdout, stderr} = await run(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {cwd: home, env: {PATH: process.env.PATH ?? '', HOME: home, ...env}})
    return {code: 0, stdout, stderr}
  } catch (error) {
    const e = error as {code: number; stdout: string; stderr: string}
    return {code: e.code, stdout: e.stdout, stderr: e.stderr}
  }
}

interface Shown {
  file: string
  fileSource: string
  settings: Array<{path: string; value: unknown; source: string; detail?: string}>
}
const byPath = (shown: Shown) => Object.fromEntries(shown.settings.map((s) => [s.path, s]))

describe('homelab config show', () => {
  test('every setting with its value and where it came from: file, default, ~/.ssh/config, kubeconfig', async () => {
    const result = await homelab(['config', 'show', '--json'])
    assert.equal(result.code, 0, result.stderr)
    const shown = JSON.parse(result.stdout) as Shown
    assert.equal(shown.file, path.join(home, 'homelab.yaml'))
    assert.equal(shown.fileSource, 'cwd')
    const s = byPath(shown)
    const pick = (p: string) => s[p] && {value: s[p].value, source: s[p].source, ...(s[p].detail ? {detail: s[p].detail} : {})}
    assert.deepEqual(pick('ssh.connectTimeout'), {value: '5s', source: 'file'})
    assert.deepEqual(pick('ssh.commandTimeout'), {value: '2m', source: 'default'})
    assert.deepEqual(pick('upgrade.drain.force'), {value: true, source: 'file'})
    assert.deepEqual(pick('upgrade.drain.timeout'), {value: '5m', source: 'default'})
    assert.deepEqual(pick('install.binDir'), {value: '/usr/local/bin', source: 'default', detail: "k3s's"})
    assert.deepEqual(pick('kubernetes.kubeconfig'), {value: path.join(home, 'kubeconfig'), source: 'file'})
    assert.deepEqual(pick('kubernetes.context'), {value: 'lab', source: 'kubeconfig', detail: `current-context of ${path.join(home, 'kubeconfig')}`})
    // server-1 is reached as ~/.ssh/config says; agent-1's port and user are the file's, its jump host ~/.ssh/config's.
    assert.deepEqual(pick('nodes[0].effectiveSsh.address'), {value: '10.0.0.11', source: '~/.ssh/config', detail: 'Host matching server-1'})
    assert.deepEqual(pick('nodes[0].effectiveSsh.user'), {value: 'pi', source: '~/.ssh/config', detail: 'Host matching server-1'})
    assert.deepEqual(pick('nodes[0].effectiveSsh.port'), {value: 2222, source: '~/.ssh/config', detail: 'Host matching server-1'})
    assert.deepEqual(pick('nodes[1].effectiveSsh.port'), {value: 2200, source: 'file', detail: 'nodes[1].ssh.port'})
    assert.deepEqual(pick('nodes[1].effectiveSsh.user'), {value: 'admin', source: 'file', detail: 'nodes[1].ssh.user'})
    assert.deepEqual(pick('nodes[1].effectiveSsh.proxyJump'), {value: 'ops@bastion:22', source: '~/.ssh/config', detail: 'Host matching 10.0.0.21'})
    assert.equal(s['nodes[1].effectiveSsh.address'].source, 'default')
    assert.equal(s['nodes[1].effectiveSsh.identityFile'].source, 'default')
    // A node's settings, then how it is reached, then the next node.
    const order = shown.settings.map((x) => x.path)
    assert.ok(order.indexOf('nodes[0].effectiveSsh.user') < order.indexOf('nodes[1].name'))
    assert.ok(!result.stdout.includes(TOKEN), 'the kubeconfig token is not printed')
    assert.ok(!shown.settings.some((x) => x.path.includes('undefined')))
  })

  test('flags win and say so; the table reads the same', async () => {
    const other = path.join(home, 'kubeconfig')
    const result = await homelab(['config', 'show', '--context', 'staging', '--kubeconfig', 'kubeconfig'], {KUBECONFIG: '/nowhere'})
    assert.equal(result.code, 0, result.stderr)
    const line = (p: string) => result.stdout.split('\n').find((l) => l.startsWith(`${p} `)) ?? ''
    assert.match(line('kubernetes.kubeconfig'), new RegExp(`${other}\\s+flag \\(--kubeconfig\\)$`))
    assert.match(line('kubernetes.context'), /staging\s+flag \(--context\)$/)
    assert.match(line('ssh.connectTimeout'), /5s\s+file$/)
    assert.match(line('nodes[0].effectiveSsh.user'), /pi\s+~\/\.ssh\/config \(Host matching server-1\)$/)
    assert.match(result.stdout.split('\n')[0], new RegExp(`^${path.join(home, 'homelab.yaml')} \\(in the current directory\\)$`))
    assert.ok(!result.stdout.includes(TOKEN))
  })

  test('an invalid file is the same one-line config error as for every command (exit 2)', async () => {
    const bad = path.join(home, 'bad.yaml')
    await writeFile(bad, 'ssh: {usr: x}\nnodes: []\n')
    const result = await homelab(['config', 'show', '--config', bad])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /ssh\.usr: unknown key \(did you mean `user`\?\)/)
  })

  test('secrets are masked: secret keys whole, URL passwords and query values, webhook paths under notify', () => {
    assert.equal(maskSecret('notify[0].token', 'abc'), '********')
    assert.equal(maskSecret('install.releaseUrl', 'https://me:pw@mirror.lan/k3s?token=abc&x=1'), 'https://me:********@mirror.lan/k3s?token=********&x=********')
    assert.equal(maskSecret('install.releaseUrl', 'https://github.com/k3s-io/k3s/releases/download'), 'https://github.com/k3s-io/k3s/releases/download')
    assert.equal(maskSecret('notify[0].url', 'https://hooks.slack.com/services/T000/B000/XXXX'), 'https://hooks.slack.com/********')
    assert.equal(maskSecret('ssh.user', userInfo().username), userInfo().username)
  })
})

test('homelab config schema prints the shipped schema, the same the generator makes', async () => {
  const result = await homelab(['config', 'schema'])
  assert.equal(result.code, 0, result.stderr)
  assert.deepEqual(JSON.parse(result.stdout), configJsonSchema())
})
