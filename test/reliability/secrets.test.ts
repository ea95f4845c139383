/**
 * Issue 9, secrets: everything the CLI writes (stdout, stderr, NDJSON events, `--json`, the run
 * journals and whatever else lands in its state dir) is searched for the SSH key's passphrase,
 * the kubeconfig's bearer token and its client key, through a run that succeeds and one that
 * fails and compensates. (homelab never sends a sudo password: it runs `sudo -n` and refuses a
 * node that asks for one, so there is none to leak.)
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {parse, stringify} from 'yaml'

import {setStartFailure} from '../sim/node-fixture.js'
import {TO, lab} from '../upgrade/helpers.js'

const PASSPHRASE = 'correct-horse-battery-staple-7f3a'

/** A throwaway client certificate and key for the kubeconfig (the simulated API ignores them; the client still loads them). */
async function clientCertificate(): Promise<{cert: string; key: string}> {
  const dir = await mkdtemp(path.join(tmpdir(), 'homelab-secrets-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=admin',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], {stdio: 'ignore'})
    return {cert: await readFile(path.join(dir, 'cert.pem'), 'utf8'), key: await readFile(path.join(dir, 'key.pem'), 'utf8')}
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

async function textFilesUnder(dir: string): Promise<Array<{file: string; text: string}>> {
  const out: Array<{file: string; text: string}> = []
  for (const entry of await readdir(dir, {withFileTypes: true, recursive: true}).catch(() => [])) {
    if (!entry.isFile()) continue
    const file = path.join(entry.parentPath, entry.name)
    const data = await readFile(file)
    if (data.includes(0)) continue // binaries (cached k3s releases)
    out.push({file, text: data.toString('utf8')})
  }
  return out
}

test('no passphrase, token or client key in anything the CLI writes, on success and on failure', async (t) => {
  const homelab = await lab(t)
  // The identity file gets a passphrase, given the way a CI job would: HOMELAB_SSH_PASSPHRASE.
  execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', PASSPHRASE, '-f', homelab.identityPath], {stdio: 'ignore'})
  const kubeconfig = parse(await readFile(homelab.kubeconfigPath, 'utf8')) as {users: Array<{user: Record<string, string>}>}
  const {cert, key} = await clientCertificate()
  for (const {user} of kubeconfig.users) {
    user['client-certificate-data'] = Buffer.from(cert).toString('base64')
    user['client-key-data'] = Buffer.from(key).toString('base64')
  }
  await writeFile(homelab.kubeconfigPath, stringify(kubeconfig))
  const token = homelab.api.token
  const keyBody = key.split('\n').filter((line) => line && !line.startsWith('-----')).join('')
  const secrets: Array<[string, string]> = [
    ['passphrase', PASSPHRASE],
    ['token', token],
    ['client key (base64)', kubeconfig.users[0].user['client-key-data']],
    ['client key (PEM body)', keyBody.slice(0, 40)],
  ]
  const env = {HOMELAB_SSH_PASSPHRASE: PASSPHRASE}

  const outputs: Array<{what: string; text: string}> = []
  const run = async (what: string, args: string[]) => {
    const result = await homelab.cli(args, {env})
    outputs.push({what: `${what} stdout`, text: result.stdout}, {what: `${what} stderr`, text: result.stderr})
    return result
  }
  const status = await run('status', ['k8s', 'status', '--json'])
  assert.equal(status.exitCode, 0, status.stderr)
  assert.match(status.stdout, /"reachable": true/, 'SSH worked with the encrypted key')
  const dry = await run('dry run', ['k8s', 'upgrade', '--to', TO, '--dry-run', '--log-format', 'json'])
  assert.equal(dry.exitCode, 0, dry.stderr)

  await setStartFailure(homelab.node('agent-2').fixture, 'level=fatal msg="flag provided but not defined: -some-removed-flag"')
  const failed = await run('failed run', ['k8s', 'upgrade', '--to', TO, '--yes', '--json', '--log-format', 'json'])
  // The agent cannot start at the old version either: compensation stops short, with manual steps.
  assert.equal(failed.exitCode, 5, failed.stdout + failed.stderr)
  await setStartFailure(homelab.node('agent-2').fixture, null)
  const rollback = await run('rollback', ['k8s', 'rollback', '--yes', '--json'])
  assert.equal(rollback.exitCode, 0, rollback.stdout + rollback.stderr)
  const ok = await run('run', ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr)
  const wrong = await homelab.cli(['k8s', 'status'], {env: {HOMELAB_SSH_PASSPHRASE: `${PASSPHRASE}-wrong`}})
  outputs.push({what: 'wrong passphrase stdout', text: wrong.stdout}, {what: 'wrong passphrase stderr', text: wrong.stderr})
  assert.match(wrong.stdout + wrong.stderr, /wrong passphrase for SSH key/)

  const files = await textFilesUnder(path.join(homelab.env.XDG_STATE_HOME, 'homelab'))
  assert.ok(files.some((f) => f.file.includes(`${path.sep}runs${path.sep}`)), 'the journals were searched')
  for (const f of files) outputs.push({what: f.file, text: f.text})
  for (const [name, secret] of secrets) {
    assert.ok(secret.length >= 16, `${name} is long enough to search for`)
    for (const output of outputs) assert.ok(!output.text.includes(secret), `the ${name} appears in ${output.what}`)
    // Also not as the wrong passphrase's prefix, i.e. not echoed back in part.
    if (name === 'passphrase') for (const output of outputs) assert.ok(!output.text.includes(secret.slice(0, 12)), `part of the passphrase appears in ${output.what}`)
  }
})
