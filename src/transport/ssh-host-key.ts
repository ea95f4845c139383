import {ConnectionError, ExitCode, HostKeyError} from '../errors.js'
import {appendKnownHost, checkHostKey, hostKeyLine, keyBlobType, knownHostsName, sha256Fingerprint} from './known-hosts.js'
import {quoteArg} from './quote.js'
import type {SshEndpoint} from './ssh-config.js'
import type {SshContext} from './ssh-context.js'

const DEFAULT_HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]

/** Known key types first, so a host with several keys shows us the one we know (as OpenSSH does). */
export function hostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const preferred: string[] = []
  for (const type of knownTypes) {
    const algos = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type]
    for (const a of algos) if (DEFAULT_HOST_KEY_ALGOS.includes(a) && !preferred.includes(a)) preferred.push(a)
  }
  return [...preferred, ...DEFAULT_HOST_KEY_ALGOS.filter((a) => !preferred.includes(a))]
}

/**
 * Judges the key a server offered against known_hosts, as OpenSSH would: a match passes, a
 * changed or revoked key is refused with the commands to check and fix it, and an unknown one
 * is refused unless accept-new is on. Then `add` records it; the caller runs it only after the
 * handshake, once the server has proved it holds the key.
 */
export async function verifyHostKey(
  ctx: SshContext,
  endpoint: SshEndpoint,
  key: Buffer,
  knownTypes: readonly string[],
): Promise<{add?: () => Promise<void>}> {
  const {host, port, knownHostsFiles} = endpoint
  const type = keyBlobType(key) ?? 'unknown'
  const fingerprint = sha256Fingerprint(key)
  const status = await checkHostKey(knownHostsFiles, host, port, type, key)
  const label = port === 22 ? host : `${host}:${port}`
  const file = knownHostsFiles[0] ?? '~/.ssh/known_hosts'
  const fileShown = ctx.tilde(file)
  const fileArg = fileShown.startsWith('~/') ? `~/${quoteArg(fileShown.slice(2))}` : quoteArg(fileShown)
  const keyscan = `ssh-keyscan${port === 22 ? '' : ` -p ${port}`} -t ${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-nistp\d+$/, 'ecdsa')} -H ${quoteArg(host)} >> ${fileArg}`
  switch (status) {
    case 'match':
      return {}
    case 'revoked':
      throw new ConnectionError(`host key of ${label} (${fingerprint}) is marked @revoked in known_hosts; refusing to connect`, {
        exitCode: ExitCode.preflightRefused,
        hint: `this key must not be trusted: find out why it was revoked; if the host has a new key, add it after checking its fingerprint out of band`,
      })
    case 'changed': {
      const holder = await firstFileWith(knownHostsFiles, (f) => checkHostKey(f, host, port, type, key).then((s) => s === 'changed'))
      const holderShown = ctx.tilde(holder ?? file)
      const fFlag = holderShown === '~/.ssh/known_hosts' ? '' : ` -f ${holderShown.startsWith('~/') ? `~/${quoteArg(holderShown.slice(2))}` : quoteArg(holderShown)}`
      throw new HostKeyError(
        label,
        fingerprint,
        'changed',
        `someone may be intercepting the connection, or ${label} was reinstalled. Check the new fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-nistp\d+$/, 'ecdsa')}_key.pub); only if it matches, remove the old key with \`ssh-keygen -R ${quoteArg(knownHostsName(host, port))}${fFlag}\` and connect again with ${ctx.options.acceptNewFlag ?? '--accept-new-host-keys'}`,
      )
    }
    case 'unknown': {
      const otherTypes = knownTypes.filter((t) => t !== type)
      if (otherTypes.length > 0) {
        // We asked for the key types we know first; a server that shows another one is suspicious.
        throw new HostKeyError(
          label,
          fingerprint,
          'unknown',
          `known_hosts has a ${otherTypes.join(', ')} key for ${label} but the server offered ${type}; check on the host that ${fingerprint} is its key, then add it with \`${keyscan}\``,
        )
      }
      if (!ctx.options.acceptNewHostKeys) {
        throw new HostKeyError(
          label,
          fingerprint,
          'unknown',
          `check that ${fingerprint} is the host's key (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-nistp\d+$/, 'ecdsa')}_key.pub), then trust it with \`${keyscan}\`, or run again with ${ctx.options.acceptNewFlag ?? '--accept-new-host-keys'}`,
        )
      }
      return {
        add: async () => {
          await appendKnownHost(file, host, port, hostKeyLine(key))
          ctx.emit({type: 'host-key-added', node: ctx.node, host, port, fingerprint, file})
        },
      }
    }
  }
}

async function firstFileWith(files: readonly string[], test: (f: string) => Promise<boolean>): Promise<string | undefined> {
  for (const f of files) if (await test(f)) return f
  return undefined
}
