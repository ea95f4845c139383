import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {test} from 'node:test'
import {ConfigError} from '../../src/errors.js'
import {resolveSshTarget} from '../../src/transport/ssh-config.js'

const home = '/home/alice'
const base = {localUser: 'alice', home}

const sshConfig = `
Host pi*
  HostName %h.lan
  User pi
  IdentityFile ~/.ssh/id_pi
  IdentityFile "%d/.ssh/keys/%r@%h:%p"
  ProxyJump bastion

Host bastion
  HostName 203.0.113.7
  Port 2200
  User jump
  ProxyJump gate

Host gate
  HostName gate.example
  IdentityFile ~/.ssh/id_gate
  UserKnownHostsFile ~/.ssh/gate_known

Host loop1
  ProxyJump loop2
Host loop2
  ProxyJump loop1

Match exec "touch /tmp/homelab-ssh-config-pwned"
  User mallory

Host *
  User fallback
  ServerAliveInterval 10
`

test('defaults when there is no ssh config', () => {
  const t = resolveSshTarget({...base, host: '10.0.0.5'})
  assert.equal(t.host, '10.0.0.5')
  assert.equal(t.port, 22)
  assert.equal(t.user, 'alice')
  assert.ok(t.identityFilesAreDefaults)
  assert.deepEqual(t.identityFiles, ['id_rsa', 'id_ecdsa', 'id_ed25519'].map((n) => `${home}/.ssh/${n}`))
  assert.deepEqual(t.knownHostsFiles, [`${home}/.ssh/known_hosts`, `${home}/.ssh/known_hosts2`])
  assert.deepEqual(t.proxyJump, [])
})

test('ssh config aliases: HostName with %h, User, IdentityFile tokens, nested ProxyJump', () => {
  const t = resolveSshTarget({...base, host: 'pi1', sshConfigText: sshConfig})
  assert.equal(t.alias, 'pi1')
  assert.equal(t.host, 'pi1.lan')
  assert.equal(t.user, 'pi')
  assert.equal(t.port, 22)
  assert.deepEqual(t.identityFiles, [`${home}/.ssh/id_pi`, `${home}/.ssh/keys/pi@pi1.lan:22`])
  assert.equal(t.identityFilesAreDefaults, false)
  assert.equal(t.keepaliveIntervalMs, 10_000)
  // bastion's own ProxyJump (gate) comes first: dial gate, then bastion through it, then pi1.
  assert.deepEqual(
    t.proxyJump.map((h) => [h.alias, h.host, h.port, h.user]),
    [
      ['gate', 'gate.example', 22, 'fallback'],
      ['bastion', '203.0.113.7', 2200, 'jump'],
    ],
  )
  assert.deepEqual(t.proxyJump[0]!.knownHostsFiles, [`${home}/.ssh/gate_known`])
  assert.deepEqual(t.proxyJump[0]!.identityFiles, [`${home}/.ssh/id_gate`])
  assert.ok(!existsSync('/tmp/homelab-ssh-config-pwned'), 'Match exec must never run')
})

test('explicit settings win over ssh config, which wins over defaults', () => {
  const t = resolveSshTarget({
    ...base,
    host: 'pi2',
    sshConfigText: sshConfig,
    explicit: {
      user: 'root',
      port: 2222,
      identityFiles: ['~/keys/homelab'],
      knownHostsFiles: ['%d/kh'],
      proxyJump: 'ops@10.0.0.1:2022,[::1]:22',
    },
  })
  assert.equal(t.host, 'pi2.lan', 'HostName still comes from ssh config')
  assert.equal(t.user, 'root')
  assert.equal(t.port, 2222)
  assert.deepEqual(t.identityFiles, [`${home}/keys/homelab`])
  assert.deepEqual(t.knownHostsFiles, [`${home}/kh`])
  assert.deepEqual(
    t.proxyJump.map((h) => [h.host, h.port, h.user]),
    [
      ['10.0.0.1', 2022, 'ops'],
      ['::1', 22, 'fallback'],
    ],
  )
  // Hops without their own IdentityFile use the node's explicit key.
  assert.deepEqual(t.proxyJump[0]!.identityFiles, [`${home}/keys/homelab`])
})

test('ProxyJump none in homelab.yaml disables the ssh config one', () => {
  const t = resolveSshTarget({...base, host: 'pi3', sshConfigText: sshConfig, explicit: {proxyJump: 'none'}})
  assert.deepEqual(t.proxyJump, [])
})

test('loops, bad ports and unknown tokens are ConfigErrors naming the file', () => {
  const file = '/home/alice/.ssh/config'
  assert.throws(
    () => resolveSshTarget({...base, host: 'loop1', sshConfigText: sshConfig, sshConfigPath: file}),
    (e: unknown) => e instanceof ConfigError && /loop/.test(e.message) && e.file === file,
  )
  assert.throws(
    () => resolveSshTarget({...base, host: 'x', sshConfigText: 'Host x\n  Port 99999\n', sshConfigPath: file}),
    (e: unknown) => e instanceof ConfigError && /port/.test(e.message) && e.file === file && e.hint !== undefined,
  )
  assert.throws(
    () => resolveSshTarget({...base, host: 'x', sshConfigText: 'Host x\n  IdentityFile ~/.ssh/%C\n', sshConfigPath: file}),
    (e: unknown) => e instanceof ConfigError && /%C/.test(e.message),
  )
  assert.throws(() => resolveSshTarget({...base, host: 'x', explicit: {port: 0}}), ConfigError)
})
