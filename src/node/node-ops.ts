import {randomBytes} from 'node:crypto'
import path from 'node:path'

import type {Arch, DistributionDescriptor, ServiceManager} from '../distributions/index.js'
import {CommandError, HomelabError, PreflightError} from '../errors.js'
import {normaliseArch} from '../release/release-source.js'
import type {Transport} from '../transport/types.js'
import {binaryPath} from './installed-version.js'

/**
 * What the upgrade does on a node, as fixed shell scripts whose every variable part is a
 * positional argument ($1, $2 …): no value from the cluster file or the API is ever pasted into
 * script text, so no name or path can be read as shell syntax.
 */
export function script(transport: Transport, text: string, args: readonly string[], options: {privileged?: boolean; signal?: AbortSignal; timeoutMs?: number} = {}) {
  return transport.run(['sh', '-c', text, 'homelab', ...args], options)
}

export type {ServiceManager} from '../distributions/index.js'

export async function detectArch(transport: Transport, signal?: AbortSignal): Promise<Arch> {
  return normaliseArch(await transport.run(['uname', '-m'], {signal}))
}

// Where a service is defined says which manager runs it; which tools exist only guesses (a
// systemctl binary can exist where systemd does not run, OpenRC's tools beside systemd).
const DEFINES: Record<ServiceManager, string> = {
  openrc: 'command -v rc-service >/dev/null 2>&1 && rc-service --exists "$1" >/dev/null 2>&1',
  systemd: 'systemctl --version >/dev/null 2>&1 && [ -n "$(systemctl show -p FragmentPath --value "$1" 2>/dev/null)" ]',
}
const PROBES: Record<ServiceManager, string> = {
  openrc: 'command -v rc-service >/dev/null 2>&1',
  systemd: 'systemctl --version >/dev/null 2>&1',
}

/**
 * The service manager that defines `service` on the node (an OpenRC init script, a systemd unit);
 * when none does yet, the first of the distribution's managers the node has, in the descriptor's
 * order (k3s: OpenRC first, since a systemctl binary can exist where systemd does not run).
 */
export async function detectServiceManager(transport: Transport, distribution: DistributionDescriptor, setting: 'auto' | ServiceManager, service: string, signal?: AbortSignal): Promise<ServiceManager> {
  const fixed = configuredServiceManager(transport.node, distribution, setting)
  if (fixed) return fixed
  return judgeServiceManager(transport.node, distribution, await script(transport, serviceManagerScript(distribution), [service], {signal}))
}

/** install.service when it is not auto (refused when the distribution does not run under it); undefined for auto. */
export function configuredServiceManager(node: string, distribution: DistributionDescriptor, setting: 'auto' | ServiceManager): ServiceManager | undefined {
  if (setting === 'auto') return undefined
  const supported = distribution.serviceManagers
  if (supported.includes(setting)) return setting
  throw new PreflightError(`${node}: install.service is ${setting}, but ${distribution.name} runs under ${supported.join(' or ')} only`, {
    hint: `set install.service to auto or ${supported[0]}`,
  })
}

/** The script that prints the manager defining the service `$1`, else the first one the node has (detectServiceManager). */
export function serviceManagerScript(distribution: DistributionDescriptor): string {
  const supported = distribution.serviceManagers
  const chain = [...supported.map((m) => [DEFINES[m], m] as const), ...supported.map((m) => [PROBES[m], m] as const)]
  return chain.map(([test, manager], i) => `${i === 0 ? 'if' : 'elif'} ${test}; then echo ${manager};`).join(' ') + ' fi'
}

/** serviceManagerScript's answer, or the refusal when the node has none of the distribution's managers. */
export function judgeServiceManager(node: string, distribution: DistributionDescriptor, output: string): ServiceManager {
  const supported = distribution.serviceManagers
  const found = output.trim() as ServiceManager
  if (supported.includes(found)) return found
  const names = supported.map((m) => (m === 'systemd' ? 'systemd' : 'OpenRC'))
  throw new PreflightError(`${node}: ${names.length === 1 ? `${names[0]} not` : `neither ${names.join(' nor ')}`} found`, {
    hint: `${distribution.name} runs under ${names.join(' or ')}; set install.service in homelab.yaml if detection is wrong`,
  })
}

/** The installer's service name for the node's role (`k3s` / `k3s-agent`, `rke2-server` / `rke2-agent`). */
export function serviceName(distribution: DistributionDescriptor, role: 'server' | 'agent'): string {
  return distribution.services[role]
}

export async function restartService(transport: Transport, manager: ServiceManager, service: string, signal?: AbortSignal): Promise<void> {
  const argv = manager === 'systemd' ? ['systemctl', 'restart', service] : ['rc-service', service, 'restart']
  await transport.run(argv, {privileged: true, signal, timeoutMs: 120_000})
}

/** Fails fast when sudo would ask for a password, instead of hanging at 2 a.m. */
export async function checkPrivilege(transport: Transport, signal?: AbortSignal): Promise<void> {
  try {
    await transport.run(['true'], {privileged: true, signal, timeoutMs: 20_000})
  } catch (error) {
    // Only a command that ran and failed says something about sudo; an unknown host key or a
    // refused login has its own message and fix.
    if (!(error instanceof CommandError)) throw error
    throw privilegeError(transport.node, error)
  }
}

/** The refusal for a node where `sudo -n -- true` failed. */
export function privilegeError(node: string, error: CommandError): PreflightError {
  return new PreflightError(`${node}: cannot run commands as root (${error.stderr.trim() || error.message})`, {
    cause: error,
    hint: 'give the SSH user passwordless sudo (NOPASSWD), or connect as root with ssh.become: none',
  })
}

/** Kilobytes free on the filesystem holding `dir`. */
export async function freeKilobytes(transport: Transport, dir: string, signal?: AbortSignal): Promise<number> {
  return parseFreeKilobytes(transport.node, dir, await script(transport, FREE_KB_SCRIPT, [dir], {signal}))
}

/** Prints `df -Pk` of the filesystem holding `$1`: the header, then its line (last: -P never wraps it). */
export const FREE_KB_SCRIPT = 'df -Pk "$1"'

export function parseFreeKilobytes(node: string, dir: string, out: string): number {
  const available = Number(out.trim().split('\n').at(-1)?.trim().split(/\s+/)[3])
  if (!Number.isFinite(available)) throw new CommandError(`${node}: cannot read free space of ${dir}`, 0, out)
  return available
}

/** Prints `<sha256>  <file>` when `$1` is a file, nothing otherwise. */
export const SHA256_SCRIPT = 'if [ -f "$1" ]; then sha256sum "$1"; fi'

export async function sha256OnNode(transport: Transport, file: string, signal?: AbortSignal): Promise<string | undefined> {
  return parseSha256(await script(transport, SHA256_SCRIPT, [file], {signal}))
}

export function parseSha256(out: string): string | undefined {
  const hash = out.trim().split(/\s+/)[0]
  return /^[0-9a-f]{64}$/.test(hash ?? '') ? hash : undefined
}

/** Where the new binary waits beside the live one: a hidden name no service starts. */
export function stagedBinaryPath(binary: string, binDir: string): string {
  return path.posix.join(binDir, `.${binary}.homelab-new`)
}

/** Prints the sha256 of `$1` (the live binary) and of `$2` (the staged one), a line each, `-` for a missing file. */
export const STAGE_STATE_SCRIPT = 'for f in "$1" "$2"; do if [ -f "$f" ]; then sha256sum "$f" | cut -d" " -f1; else echo -; fi; done'

/** The sha256 of the live binary and of a staged one (a run killed after staging left it), in one round trip. */
export async function stageState(transport: Transport, live: string, staged: string, signal?: AbortSignal): Promise<{liveSha?: string; stagedSha?: string}> {
  const [liveSha, stagedSha] = (await script(transport, STAGE_STATE_SCRIPT, [live, staged], {signal})).split('\n').map((line) => parseSha256(line))
  return {liveSha, stagedSha}
}

/** Removes a staged binary that was never swapped in (a failed or cancelled run). */
export async function discardStagedBinary(transport: Transport, staged: string, signal?: AbortSignal): Promise<void> {
  await script(transport, 'rm -f "$1"', [staged], {privileged: true, signal})
}

export interface StageResult {
  /** Where the verified new binary waits on the node, beside the live one. */
  stagedPath: string
}

/**
 * Puts the new binary next to the live one (same directory, so the swap is one rename) and
 * checks its sha256 there, after the copy. Pushed over SFTP from the CLI's verified cache, or
 * downloaded by the node itself (install.source: node).
 */
export async function stageBinary(
  transport: Transport,
  options: {binary: string; binDir: string; sha256: string; source: {localPath: string} | {url: string}; signal?: AbortSignal},
): Promise<StageResult> {
  const {binary, binDir, sha256, signal} = options
  const stagedPath = stagedBinaryPath(binary, binDir)
  // Unique per node and attempt: nothing else may ever read or remove this file half-way.
  const upload = `/tmp/.homelab-${binary}-${transport.node}-${randomBytes(6).toString('hex')}`
  if ('localPath' in options.source) {
    await transport.putFile(options.source.localPath, upload, {mode: 0o755, signal})
  } else {
    await script(
      transport,
      'if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$2" "$1"; else wget -qO "$2" "$1"; fi',
      [options.source.url, upload],
      {signal, timeoutMs: 600_000},
    )
  }
  await script(
    transport,
    'set -e; actual=$(sha256sum "$1" | cut -d" " -f1); if [ "$actual" != "$2" ]; then echo "sha256 does not match: got $actual, expected $2" >&2; rm -f "$1"; exit 3; fi; cp "$1" "$3.tmp"; chmod 0755 "$3.tmp"; mv -f "$3.tmp" "$3"; rm -f "$1"',
    [upload, sha256, stagedPath],
    {privileged: true, signal},
  ).catch((error: unknown) => {
    if (error instanceof CommandError && error.exitStatus === 3) {
      throw new HomelabError(`${transport.node}: the copied ${binary} binary's sha256 does not match (${error.stderr.trim()})`, {
        cause: error,
        hint: 'the copy was damaged on the way; nothing was swapped. Run again',
      })
    }
    throw error
  })
  return {stagedPath}
}

/**
 * Keeps the live binary as <binary>.prev (unless it already is the new one) and renames the
 * staged binary over it: one rename, so the node never has a half-written binary. The old
 * process keeps running its old inode until the service restarts.
 */
export async function swapBinary(transport: Transport, live: string, stagedPath: string, signal?: AbortSignal): Promise<void> {
  await script(
    transport,
    'set -e; if [ -f "$1" ]; then cp -p "$1" "$1.prev.tmp"; mv -f "$1.prev.tmp" "$1.prev"; fi; mv -f "$2" "$1"',
    [live, stagedPath],
    {privileged: true, signal},
  )
}

/** Puts <binary>.prev back as the live binary, when the live one has not that sha256 already. */
export async function restorePreviousBinary(transport: Transport, live: string, previousSha256: string, signal?: AbortSignal): Promise<'restored' | 'already'> {
  const out = await script(
    transport,
    'set -e; now=$(sha256sum "$1" 2>/dev/null | cut -d" " -f1 || true); if [ "$now" = "$3" ]; then echo already; exit 0; fi; prev=$(sha256sum "$2" | cut -d" " -f1); if [ "$prev" != "$3" ]; then echo "$2 is not the previous binary (sha256 $prev, expected $3)" >&2; exit 3; fi; cp -p "$2" "$1.restore.tmp"; mv -f "$1.restore.tmp" "$1"; echo restored',
    [live, `${live}.prev`, previousSha256],
    {privileged: true, signal},
  )
  return out.trim() === 'already' ? 'already' : 'restored'
}

/** `<binary> etcd-snapshot save`; returns the snapshot's file name as the binary logged it (on stderr), or the name base. */
export async function saveEtcdSnapshot(
  transport: Transport,
  distribution: DistributionDescriptor,
  options: {binDir: string; dataDir: string; name: string; signal?: AbortSignal},
): Promise<string> {
  const argv = [binaryPath(distribution, options.binDir), ...distribution.etcd.snapshotArgs(options.name, options.dataDir)]
  const result = await transport.exec(argv, {privileged: true, signal: options.signal, timeoutMs: 300_000})
  if (result.exitCode !== 0) {
    throw new CommandError(`${transport.node}: ${distribution.binary} etcd-snapshot save failed: ${lastLine(result.stderr)}`, result.exitCode, result.stderr, {
      hint: `check that the server runs embedded etcd and ${distribution.services.server} is running; or set upgrade.backup.etcdSnapshot: never`,
    })
  }
  const escaped = options.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const match = new RegExp(`(${escaped}-[^\\s"]+)`).exec(`${result.stderr}\n${result.stdout}`)
  return match?.[1] ?? options.name
}

/**
 * The name of a snapshot under the distribution's snapshot dir whose name starts with `base-`
 * (`<base>-<node>-<unix-ts>`), if one was taken already: a run killed after the save and before
 * its journal said so finds it instead of taking a second.
 */
export async function findEtcdSnapshot(transport: Transport, distribution: DistributionDescriptor, options: {dataDir: string; base: string; signal?: AbortSignal}): Promise<string | undefined> {
  const out = await script(
    transport,
    'ls -1 "$1" 2>/dev/null | while read -r f; do case "$f" in "$2"*) echo "$f"; break;; esac; done; true',
    [distribution.etcd.snapshotDir(options.dataDir), `${options.base}-`],
    {privileged: true, signal: options.signal},
  )
  return out.trim().split('\n')[0] || undefined
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? ''
}
