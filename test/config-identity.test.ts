/**
 * A configured ssh.identityFile that is not there is said when the cluster file is loaded,
 * naming the file and the line that configures it, instead of as "authentication failed … no
 * readable identity file" once per node at login.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {ConfigProblemsError, loadConfig} from '../src/config/index.js'
import {ExitCode} from '../src/errors.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

let tmp: string
let count = 0
before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'homelab-identity-'))
})
after(() => rm(tmp, {recursive: true, force: true}))

/** A cwd with homelab.yaml holding `text`, and a home of its own. */
async function lab(text: string): Promise<{cwd: string; home: string; file: string}> {
  const cwd = path.join(tmp, `lab${count++}`)
  const home = path.join(cwd, 'home')
  await mkdir(path.join(home, '.ssh'), {recursive: true})
  const file = path.join(cwd, 'homelab.yaml')
  await writeFile(file, text)
  return {cwd, home, file}
}

function load(where: {cwd: string; home: string}, checkIdentityFiles?: boolean) {
  return loadConfig({env: {}, cwd: where.cwd, home: where.home, ...(checkIdentityFiles === undefined ? {} : {checkIdentityFiles})})
}

async function refusal(where: {cwd: string; home: string}): Promise<ConfigProblemsError> {
  try {
    await load(where)
  } catch (error) {
    assert.ok(error instanceof ConfigProblemsError, String(error))
    assert.equal(error.exitCode, ExitCode.usage)
    return error
  }
  assert.fail('the cluster file was accepted')
}

const NODES = `nodes:
  - {name: server-1, host: 10.0.0.11, role: server}
  - name: agent-1
    host: 10.0.0.21
    role: agent
    ssh:
      identityFile: keys/agent-1
`

describe('identity files are checked when the cluster file is loaded', () => {
  it('names the missing file, the setting and its line', async () => {
    const l = await lab(`ssh:\n  user: admin\n  identityFile: ~/.ssh/id_homelab\n${NODES}`)
    await writeFile(path.join(l.cwd, 'keys-agent-1'), 'not where it is looked for')
    const error = await refusal(l)
    const missing = path.join(l.home, '.ssh', 'id_homelab')
    assert.equal(
      error.message,
      [`${l.file}:3:17: ssh.identityFile: the identity file ${missing} does not exist`, `${l.file}:10:21: nodes[1].ssh.identityFile: the identity file ${path.join(l.cwd, 'keys', 'agent-1')} does not exist`].join('\n'),
    )
    assert.deepEqual(error.problems.map((p) => [p.path, p.line]), [['ssh.identityFile', 3], ['nodes[1].ssh.identityFile', 10]])
    assert.match(error.hint ?? '', /set ssh\.identityFile to your private key \(e\.g\. ~\/\.ssh\/id_ed25519\), or remove it to use the SSH agent/)
    assert.match(error.oneLine(), /\n {2}fix: set ssh\.identityFile/)
  })

  it('a directory is not a key file', async () => {
    const l = await lab(`ssh: {identityFile: ~/.ssh}\n${NODES.split('\n').slice(0, 2).join('\n')}\n`)
    const error = await refusal(l)
    assert.match(error.message, /homelab\.yaml:1:21: ssh\.identityFile: the identity file .*\/home\/\.ssh is a directory, not a key file$/)
  })

  it('accepts files that are there, and does not ask about nodes reached without SSH', async () => {
    const l = await lab(`ssh: {identityFile: ~/.ssh/id_homelab}\nnodes:\n  - {name: server-1, host: 10.0.0.11, role: server, connection: local, ssh: {identityFile: /nowhere/key}}\n  - {name: agent-1, host: 10.0.0.21, role: agent}\n`)
    await writeFile(path.join(l.home, '.ssh', 'id_homelab'), 'a private key\n', {mode: 0o600})
    const {config} = await load(l)
    assert.equal(config.ssh.identityFile, path.join(l.home, '.ssh', 'id_homelab'))
  })

  it('checkIdentityFiles: false loads the file all the same (for commands that never log in)', async () => {
    const l = await lab(`ssh: {identityFile: ~/.ssh/id_homelab}\n${NODES}`)
    const {config} = await load(l, false)
    assert.equal(config.ssh.identityFile, path.join(l.home, '.ssh', 'id_homelab'))
  })
})

describe('the CLI with a missing identity file', () => {
  const run = (cwd: string, home: string, args: string[]) =>
    new Promise<{code: number; stdout: string; stderr: string}>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'bin', 'run.js'), ...args], {cwd, env: {PATH: process.env.PATH ?? '', HOME: home, NO_COLOR: '1'}, timeout: 30_000}, (error, stdout, stderr) =>
        resolve({code: error ? Number((error as {code?: number}).code ?? 1) : 0, stdout, stderr}),
      )
    })

  before(() => assert.ok(existsSync(path.join(ROOT, 'dist', 'commands', 'k8s', 'status.js')), 'the CLI is not built: run `npm run build` (npm test does) before this file'))

  it('k8s status refuses at config load with exit 2, before any node is asked', async () => {
    // 192.0.2.0/24 is TEST-NET-1: were anything dialled, it would hang, not answer.
    const l = await lab('ssh: {identityFile: ~/.ssh/id_homelab}\nnodes:\n  - {name: server-1, host: 192.0.2.1, role: server}\n')
    const r = await run(l.cwd, l.home, ['k8s', 'status'])
    assert.equal(r.code, 2, r.stderr)
    assert.equal(r.stdout, '')
    const missing = path.join(l.home, '.ssh', 'id_homelab')
    assert.equal(
      r.stderr,
      `homelab: ${l.file}:1:21: ssh.identityFile: the identity file ${missing} does not exist ` +
        "(fix: set ssh.identityFile to your private key (e.g. ~/.ssh/id_ed25519), or remove it to use the SSH agent, ~/.ssh/config's IdentityFile and the default keys)\n",
    )
  })

  it('plan generate, which never logs in, is not refused for it', async () => {
    const l = await lab('ssh: {identityFile: ~/.ssh/id_homelab}\nnodes:\n  - {name: server-1, host: 192.0.2.1, role: server}\n')
    const r = await run(l.cwd, l.home, ['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--offline'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /kind: Plan/)
  })
})
