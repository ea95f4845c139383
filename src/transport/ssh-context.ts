import {homedir} from 'node:os'
import {AbortedError} from '../errors.js'
import type {ResolvedSshTarget} from './ssh-config.js'
import type {SshKeyStore} from './ssh-keys.js'

export type Become = 'sudo' | 'none'

export type SshTransportEvent =
  | {type: 'connecting'; node: string; host: string; port: number; via: string[]}
  | {type: 'connected'; node: string; host: string; port: number}
  | {type: 'disconnected'; node: string; reason?: string}
  | {type: 'host-key-added'; node: string; host: string; port: number; fingerprint: string; file: string}
  | {type: 'identity-skipped'; node: string; path: string; reason: string}

export interface SshTransportOptions {
  /** Node name, for messages. */
  node: string
  /** Where and how to connect: see resolveSshTarget(). */
  target: ResolvedSshTarget
  /** How privileged commands run: `sudo -n --` or as is. Default sudo. */
  become?: Become
  /** OpenSSH's `accept-new`: trust and record an unknown host key; a changed key is refused anyway. */
  acceptNewHostKeys?: boolean
  /** Environment for SSH_AUTH_SOCK and the passphrase variable. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>
  /** Variable holding the passphrase of encrypted identity files. Default HOMELAB_SSH_PASSPHRASE. */
  passphraseEnvVar?: string
  /** The run's identity files, read and unlocked once for all its nodes; default: this transport's own. */
  keys?: SshKeyStore
  /** Asked for an encrypted key's passphrase when the variable is unset (the CLI prompts on a TTY). */
  askPassphrase?: (keyPath: string) => Promise<string | undefined>
  /** Bound for TCP connect + handshake + auth, per hop. Default: ssh config ConnectTimeout, else 20 s. */
  connectTimeoutMs?: number
  /** Default: ssh config ServerAliveInterval, else 15 s. 0 disables. */
  keepaliveIntervalMs?: number
  /** Default: ssh config ServerAliveCountMax, else 3. */
  keepaliveCountMax?: number
  /** After a timeout/abort the command gets TERM, then KILL after this long. Default 2 s. */
  killGraceMs?: number
  /** Channels open at once on the connection (OpenSSH allows 10 by default). Default 8. */
  maxSessions?: number
  /** How the user's CLI spells accept-new, for hints. Default `--accept-new-host-keys`. */
  acceptNewFlag?: string
  /** Home directory for `~` in hints. Default os.homedir(). */
  home?: string
  onEvent?: (event: SshTransportEvent) => void
}

/**
 * What the parts of one SSH transport (connection, auth, host keys, commands, SFTP) share:
 * its options with the defaults filled in once, and one way to report and to name paths.
 */
export interface SshContext {
  readonly node: string
  readonly options: SshTransportOptions
  readonly become: Become
  readonly env: Readonly<Record<string, string | undefined>>
  emit(event: SshTransportEvent): void
  /** A path under the home directory as `~/…`, for messages and hints. */
  tilde(path: string): string
}

export function sshContext(options: SshTransportOptions): SshContext {
  return {
    node: options.node,
    options,
    become: options.become ?? 'sudo',
    env: options.env ?? process.env,
    emit(event) {
      try {
        options.onEvent?.(event)
      } catch {
        // an observer's failure must not break the connection
      }
    },
    tilde(path) {
      const home = options.home ?? homedir()
      return home && (path === home || path.startsWith(`${home}/`)) ? `~${path.slice(home.length)}` : path
    },
  }
}

/** The caller's own AbortedError when it gave one, so a cancel reads the same at every layer. */
export function abortReason(signal: AbortSignal | undefined, what: string): AbortedError {
  const reason = signal?.reason
  return reason instanceof AbortedError ? reason : new AbortedError(`cancelled: ${what}`, {cause: reason})
}
