import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, test} from 'node:test'
import {
  appendKnownHost,
  checkHostKey,
  checkHostKeyText,
  knownKeyTypes,
  matchHostList,
  matchPattern,
  sha256Fingerprint,
} from '../../src/transport/known-hosts.js'

const dir = mkdtempSync(join(tmpdir(), 'homelab-kh-'))
after(() => rmSync(dir, {recursive: true, force: true}))

function keygen(name: string, type = 'ed25519'): {line: string; type: string; blob: Buffer} {
  const file = join(dir, name)
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', '', '-f', file])
  const [keyType, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/)
  return {line: `${keyType} ${b64}`, type: keyType!, blob: Buffer.from(b64!, 'base64')}
}

const a = keygen('a')
const b = keygen('b')
const rsa = keygen('r', 'rsa')

test('wildcards and negation follow OpenSSH', () => {
  assert.ok(matchPattern('node1.lan', '*.lan'))
  assert.ok(matchPattern('NODE1.LAN', 'node?.lan'))
  assert.ok(!matchPattern('node10.lan', 'node?.lan'))
  assert.ok(matchPattern('[10.0.0.1]:2222', '[10.0.0.*]:2222'))
  assert.ok(!matchPattern('[10.0.0.1]:2222', '10.0.0.*'))
  assert.ok(matchHostList('a.lan', 'x,*.lan'))
  assert.ok(!matchHostList('bad.lan', '*.lan,!bad.lan'))
  assert.ok(!matchHostList('a.lan', '!b.lan'), 'a negation alone matches nothing')
})

test('plain, port, comma-list entries: match, changed, unknown', () => {
  const text = [
    '# comment',
    `node1,10.0.0.1 ${a.line}`,
    `[127.0.0.1]:2222 ${a.line} comment here`,
    `*.lan,!evil.lan ${b.line}`,
  ].join('\n')
  assert.equal(checkHostKeyText(text, 'node1', 22, a.type, a.blob), 'match')
  assert.equal(checkHostKeyText(text, '10.0.0.1', 22, a.type, a.blob), 'match')
  assert.equal(checkHostKeyText(text, '10.0.0.1', 22, b.type, b.blob), 'changed')
  assert.equal(checkHostKeyText(text, '127.0.0.1', 2222, a.type, a.blob), 'match')
  assert.equal(checkHostKeyText(text, '127.0.0.1', 22, a.type, a.blob), 'unknown', 'port 22 is a different entry')
  assert.equal(checkHostKeyText(text, '127.0.0.1', 2222, b.type, b.blob), 'changed')
  assert.equal(checkHostKeyText(text, 'pi.lan', 22, b.type, b.blob), 'match')
  assert.equal(checkHostKeyText(text, 'evil.lan', 22, b.type, b.blob), 'unknown')
  // A key of another type for a known host is not a change: hosts have several keys.
  assert.equal(checkHostKeyText(text, 'node1', 22, rsa.type, rsa.blob), 'unknown')
})

test('hashed entries written by ssh-keygen -H match', async () => {
  const file = join(dir, 'hashed')
  writeFileSync(file, `[127.0.0.1]:2222 ${a.line}\nnode1 ${b.line}\n`)
  execFileSync('ssh-keygen', ['-q', '-H', '-f', file], {stdio: 'ignore'})
  const text = readFileSync(file, 'utf8')
  assert.match(text, /^\|1\|/m)
  assert.doesNotMatch(text, /127\.0\.0\.1|node1/)
  assert.equal(await checkHostKey(file, '127.0.0.1', 2222, a.type, a.blob), 'match')
  assert.equal(await checkHostKey(file, '127.0.0.1', 2222, b.type, b.blob), 'changed')
  assert.equal(await checkHostKey(file, 'NODE1', 22, b.type, b.blob), 'match')
  assert.equal(await checkHostKey(file, '127.0.0.1', 2223, a.type, a.blob), 'unknown')
  assert.deepEqual(await knownKeyTypes(file, '127.0.0.1', 2222), ['ssh-ed25519'])
})

test('@revoked refuses the key, @cert-authority never vouches', () => {
  const text = [`@revoked * ${a.line}`, `node1 ${a.line}`, `@cert-authority *.lan ${b.line}`].join('\n')
  assert.equal(checkHostKeyText(text, 'node1', 22, a.type, a.blob), 'revoked')
  assert.equal(checkHostKeyText(text, 'x.lan', 22, b.type, b.blob), 'unknown')
})

test('several files: match in any wins over changed in another; missing files are empty', async () => {
  const f1 = join(dir, 'kh1')
  const f2 = join(dir, 'kh2')
  writeFileSync(f1, `node9 ${b.line}\n`)
  writeFileSync(f2, `node9 ${a.line}\n`)
  assert.equal(await checkHostKey([f1, f2], 'node9', 22, a.type, a.blob), 'match')
  assert.equal(await checkHostKey([join(dir, 'missing')], 'node9', 22, a.type, a.blob), 'unknown')
})

test('fingerprint equals ssh-keygen -l', () => {
  const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'a.pub')], {encoding: 'utf8'})
  assert.equal(sha256Fingerprint(a.blob), out.split(/\s+/)[1])
  assert.match(sha256Fingerprint(a.blob), /^SHA256:[A-Za-z0-9+/]{43}$/)
})

test('appendKnownHost creates a private dir and file that ssh-keygen -F finds', async () => {
  const file = join(dir, 'new', 'sub', 'known_hosts')
  await appendKnownHost(file, '127.0.0.1', 2222, a.line)
  await appendKnownHost(file, 'node1', 22, `${b.line} some-comment`)
  assert.equal(statSync(file).mode & 0o777, 0o600)
  assert.equal(statSync(join(dir, 'new', 'sub')).mode & 0o777, 0o700)
  assert.equal(readFileSync(file, 'utf8'), `[127.0.0.1]:2222 ${a.line}\nnode1 ${b.line}\n`)
  const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', file], {encoding: 'utf8'})
  assert.match(found, new RegExp(a.line.split(' ')[1]!.replaceAll('+', '\\+')))
  assert.equal(await checkHostKey(file, '127.0.0.1', 2222, a.type, a.blob), 'match')
})

test('a file read once is read again when it changes: the same size rewritten, a line appended, removed', async () => {
  const file = join(dir, 'changing_known_hosts')
  writeFileSync(file, `node7 ${a.line}\n`)
  assert.equal(await checkHostKey(file, 'node7', 22, a.type, a.blob), 'match')
  assert.deepEqual(await knownKeyTypes(file, 'node7', 22), ['ssh-ed25519'])
  // b's line is as long as a's (both ed25519): only the stat's times and inode tell the files apart.
  writeFileSync(file, `node7 ${b.line}\n`)
  assert.equal(await checkHostKey(file, 'node7', 22, a.type, a.blob), 'changed')
  await appendKnownHost(file, 'node8', 22, a.line)
  assert.equal(await checkHostKey(file, 'node8', 22, a.type, a.blob), 'match')
  rmSync(file)
  assert.equal(await checkHostKey(file, 'node7', 22, b.type, b.blob), 'unknown')
})
