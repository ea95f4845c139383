/**
 * Shell completion through @oclif/plugin-autocomplete (issue 10): `homelab autocomplete
 * --refresh-cache` writes the bash, zsh and PowerShell functions under the user's cache dir, and
 * bash, given them, completes our commands and flags (with spaces between topic and command).
 * Runs the built CLI (`npm run build` first) in a home of its own.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, test} from 'node:test'
import {promisify} from 'node:util'

import {REPO_ROOT} from '../sim/homelab.js'

const run = promisify(execFile)
let home: string
const functions = () => path.join(home, '.cache', 'homelab', 'autocomplete', 'functions')

before(async () => {
  home = await mkdtemp(path.join(tmpdir(), 'homelab-complete-'))
  await run(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), 'autocomplete', '--refresh-cache'], {cwd: home, env: {PATH: process.env.PATH ?? '', HOME: home}})
})
after(() => rm(home, {recursive: true, force: true}))

test('autocomplete writes bash, zsh and PowerShell functions that know every command', async () => {
  const files = {bash: 'bash/homelab.bash', zsh: 'zsh/_homelab', powershell: 'powershell/homelab.ps1'}
  for (const [shell, file] of Object.entries(files)) {
    const text = await readFile(path.join(functions(), file), 'utf8')
    for (const word of ['upgrade', 'rollback', 'history', 'init', 'schema', 'show']) assert.match(text, new RegExp(`\\b${word}\\b`), `${shell} completes ${word}`)
  }
})

test('bash completes a command after its topic, and its flags', async (t) => {
  const bash = await run('bash', ['-c', 'echo ok']).catch(() => undefined)
  if (!bash) return t.skip('no bash here')
  const complete = async (words: string[]) => {
    const script = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _homelab_autocomplete; printf '%s\\n' "\${COMPREPLY[@]}"`
    const {stdout} = await run('bash', ['-c', script, 'bash', path.join(functions(), 'bash', 'homelab.bash'), ...words])
    return stdout.trim().split('\n')
  }
  assert.deepEqual(await complete(['homelab', 'k8s', 'up']), ['upgrade'])
  assert.deepEqual(await complete(['homelab', 'k8s', 'upgrade', '--dr']), ['--dry-run'])
  assert.deepEqual(await complete(['homelab', 'k8s', 'hist']), ['history'])
  assert.ok((await complete(['homelab', 'config', ''])).includes('schema'))
})
