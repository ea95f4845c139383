/**
 * The node's package manager as kubeadm's upgrade guide uses it: which one the node has, which
 * versions are installed and held, where the Kubernetes repository is defined, which versions a
 * repository offers (asked in a scratch directory, so the node's own package state is untouched),
 * and the minor switch of a repository definition. Read-only except where a name says otherwise.
 */
import {CommandError, PreflightError} from '../errors.js'
import type {Transport} from '../transport/types.js'
import {script} from './node-ops.js'

export type PackageManagerName = 'apt' | 'dnf'

interface Options {
  signal?: AbortSignal
}

/** apt where dpkg is the package database, else dnf (EL 8+; `yum` there is dnf too). */
export async function detectPackageManager(transport: Transport, options: Options = {}): Promise<PackageManagerName> {
  return judgePackageManager(transport.node, await script(transport, DETECT_PACKAGE_MANAGER_SCRIPT, [], options))
}

/** Prints `apt` or `dnf`, or nothing. */
export const DETECT_PACKAGE_MANAGER_SCRIPT = 'if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then echo apt; elif command -v dnf >/dev/null 2>&1; then echo dnf; fi'

export function judgePackageManager(node: string, out: string): PackageManagerName {
  const found = out.trim()
  if (found === 'apt' || found === 'dnf') return found
  throw new PreflightError(`${node}: neither apt (with dpkg) nor dnf found`, {hint: 'kubeadm nodes are upgraded through apt or dnf, as the kubeadm upgrade guide does it'})
}

/** The installed version of each package (`1.31.4-1.1`), undefined for one not installed. */
export async function installedVersions(transport: Transport, manager: PackageManagerName, packages: readonly string[], options: Options = {}): Promise<Record<string, string | undefined>> {
  return parseInstalledVersions(packages, await script(transport, INSTALLED_VERSIONS_SCRIPT[manager], packages, options))
}

/** One line per package named in the arguments, `name<TAB>version`, whatever the tool says about the missing ones. */
export const INSTALLED_VERSIONS_SCRIPT: Record<PackageManagerName, string> = {
  apt: 'for p; do v=$(dpkg-query -W -f=\'${Version}\' "$p" 2>/dev/null) || v=; printf \'%s\\t%s\\n\' "$p" "$v"; done',
  dnf: 'for p; do v=$(rpm -q --qf \'%{VERSION}-%{RELEASE}\' "$p" 2>/dev/null) || v=; printf \'%s\\t%s\\n\' "$p" "$v"; done',
}

export function parseInstalledVersions(packages: readonly string[], out: string): Record<string, string | undefined> {
  const versions: Record<string, string | undefined> = Object.fromEntries(packages.map((p) => [p, undefined]))
  for (const line of out.split('\n')) {
    const [name, version] = line.split('\t')
    if (name && name in versions && version && !/not installed/.test(version)) versions[name] = version.trim()
  }
  return versions
}

/** apt: the packages on hold (`apt-mark showhold`). dnf has no holds; its `exclude=` line plays that part. */
export async function heldPackages(transport: Transport, manager: PackageManagerName, options: Options = {}): Promise<string[]> {
  if (manager !== 'apt') return []
  return parseHeldPackages(await transport.run(['apt-mark', 'showhold'], options))
}

export function parseHeldPackages(out: string): string[] {
  return out.split('\n').map((l) => l.trim()).filter(Boolean)
}

/**
 * The file that defines the Kubernetes repository: the one of the usual names (or any) in apt's
 * sources dir whose lines name a `/vX.Y/` repository; for dnf the `Repo-filename` of the enabled
 * repository whose baseurl does. `explicit` (install.repositoryFile) wins.
 */
export async function findRepositoryFile(transport: Transport, manager: PackageManagerName, names: readonly string[], explicit: string | undefined, options: Options = {}): Promise<string> {
  if (explicit) return explicit
  if (manager === 'apt') {
    const dir = parseAptSourceDir(await transport.run(APT_SOURCE_DIR_ARGV, options))
    if (dir) {
      const found = (await script(transport, FIND_APT_SOURCE_SCRIPT, [dir, ...names], options)).trim()
      if (found) return found
    }
  } else {
    const file = parseDnfRepositoryFile(await transport.run(DNF_REPOLIST_ARGV, options))
    if (file) return file
  }
  throw noRepositoryFile(transport.node, manager)
}

/** apt's sources dir (`D='/etc/apt/sources.list.d/'`). */
export const APT_SOURCE_DIR_ARGV = ['apt-config', 'shell', 'D', 'Dir::Etc::sourceparts/d'] as const

export function parseAptSourceDir(out: string): string | undefined {
  return /'(.*)'/.exec(out)?.[1]?.replace(/\/+$/, '') || undefined
}

/** `$1` apt's sources dir, then the usual file names: prints the first that names a `/vX.Y/` repository. */
export const FIND_APT_SOURCE_SCRIPT = 'd=$1; shift; for n; do [ -f "$d/$n" ] && grep -qE "/v[0-9]+\\.[0-9]+/" "$d/$n" && { echo "$d/$n"; exit 0; }; done; for f in "$d"/*.list "$d"/*.sources; do [ -f "$f" ] && grep -qE "core:/stable:/v[0-9]+\\.[0-9]+/" "$f" && { echo "$f"; exit 0; }; done; true'

export const DNF_REPOLIST_ARGV = ['dnf', '-v', 'repolist', '--enabled'] as const

/** The `Repo-filename` of the first enabled repository whose baseurl names a `/vX.Y/` repository. */
export function parseDnfRepositoryFile(out: string): string | undefined {
  for (const block of out.split(/\n(?=Repo-id\s*:)/)) {
    const baseurl = /^Repo-baseurl\s*:\s*(\S+)/m.exec(block)?.[1]
    const file = /^Repo-filename\s*:\s*(\S+)/m.exec(block)?.[1]
    if (baseurl && file && /\/v\d+\.\d+\//.test(baseurl)) return file
  }
  return undefined
}

export function noRepositoryFile(node: string, manager: PackageManagerName): PreflightError {
  return new PreflightError(`${node}: no ${manager} repository definition names a Kubernetes minor (…/v1.31/…)`, {
    hint: 'set install.repositoryFile for the node in homelab.yaml to the file that defines the Kubernetes repository',
  })
}

/**
 * The repository definition with its minor changed (`/v1.31/` → `/v1.32/` in every URL), the
 * rest kept as it is. Undefined when the text names no `/v<from>/` (a repository we cannot switch).
 */
export function switchRepositoryMinor(text: string, from: string, to: string): string | undefined {
  const pattern = new RegExp(`/v${from.replace(/^v/, '').replace('.', '\\.')}(?=/)`, 'g')
  if (!pattern.test(text)) return undefined
  return text.replace(pattern, `/v${to.replace(/^v/, '')}`)
}

/**
 * The versions of `pkg` a repository definition offers (newest first), asked through the node's
 * own package manager with a scratch sources/cache dir under /tmp, so neither apt's lists nor
 * dnf's cache of the node change. Throws CommandError when the repository cannot be read.
 */
export async function offeredVersions(transport: Transport, manager: PackageManagerName, repositoryText: string, file: string, pkg: string, options: Options = {}): Promise<string[]> {
  let out: string
  try {
    out = await script(transport, OFFERED_VERSIONS_SCRIPT[manager], [repositoryText, repositoryBase(file), pkg], {...options, timeoutMs: 120_000})
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    throw unreadableRepository(transport.node, file, error)
  }
  return parseOfferedVersions(manager, pkg, out)
}

/** The repository definition's file name, as the scratch dir names it. */
export function repositoryBase(file: string): string {
  return file.slice(file.lastIndexOf('/') + 1)
}

/** `$1` the repository definition's text, `$2` its file name, `$3` the package: what the repository offers of it. */
export const OFFERED_VERSIONS_SCRIPT: Record<PackageManagerName, string> = {
  apt: `t=$(mktemp -d) || exit 1; trap 'rm -rf "$t"' EXIT; mkdir -p "$t/lists/partial" "$t/parts" "$t/cache/archives/partial"
printf '%s' "$1" > "$t/parts/$2"
o="-o Dir::Etc::sourcelist=$t/none.list -o Dir::Etc::sourceparts=$t/parts -o Dir::State::Lists=$t/lists -o Dir::Cache=$t/cache"
apt-get $o update -qq >/dev/null 2>"$t/err" || { cat "$t/err" >&2; exit 100; }
apt-cache $o madison "$3"`,
  dnf: `t=$(mktemp -d) || exit 1; trap 'rm -rf "$t"' EXIT; mkdir -p "$t/repos" "$t/cache"
printf '%s' "$1" > "$t/repos/$2"
dnf -q list --showduplicates --disableexcludes=all --setopt=reposdir="$t/repos" --setopt=cachedir="$t/cache" "$3"`,
}

export function unreadableRepository(node: string, file: string, error: CommandError): PreflightError {
  return new PreflightError(`${node}: the package repository in ${file} (as it would be) cannot be read: ${(error.stderr.trim().split('\n').at(-1) ?? error.message).slice(0, 200)}`, {
    cause: error,
    hint: 'check that the repository for the target minor exists and the node can reach it (a mirror must carry it too)',
  })
}

export function parseOfferedVersions(manager: PackageManagerName, pkg: string, out: string): string[] {
  const versions = manager === 'apt'
    ? out.split('\n').map((l) => l.split('|')).filter((p) => p.length >= 2 && p[0].trim() === pkg).map((p) => p[1].trim())
    : out.split('\n').map((l) => l.trim().split(/\s+/)).filter((p) => p.length >= 2 && p[0].startsWith(`${pkg}.`)).map((p) => p[1])
  return [...new Set(versions)]
}

/** The package version (`1.32.4-1.1`) built from Kubernetes `v1.32.4`, among those offered. */
export function packageVersionFor(kubernetes: string, offered: readonly string[]): string | undefined {
  const plain = kubernetes.replace(/^v/, '')
  return offered.find((v) => v.startsWith(`${plain}-`))
}

/**
 * Installs each package at its exact version the way the kubeadm upgrade guide shows: apt
 * unholds, updates its lists, installs `pkg=version` (downgrades allowed, for compensation) and
 * holds again what was held; dnf installs (or downgrades) `pkg-version` past the repository's
 * `exclude=` line. Idempotent: a package already at its version is left alone.
 */
export async function installPackages(transport: Transport, manager: PackageManagerName, wanted: Readonly<Record<string, string>>, options: Options & {held: readonly string[]}): Promise<void> {
  const current = await installedVersions(transport, manager, Object.keys(wanted), options)
  const changes = Object.entries(wanted).filter(([name, version]) => current[name] !== version)
  if (changes.length === 0) return
  const names = changes.map(([name]) => name)
  const run = (argv: string[]) => transport.run(argv, {privileged: true, signal: options.signal, timeoutMs: 600_000})
  if (manager === 'apt') {
    const held = names.filter((n) => options.held.includes(n))
    if (held.length > 0) await run(['apt-mark', 'unhold', ...held])
    try {
      await run(['apt-get', 'update', '-qq'])
      await run(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', '--allow-downgrades', '--allow-change-held-packages', ...changes.map(([n, v]) => `${n}=${v}`)])
    } finally {
      // Held again even when the install failed: a hold the user set is never lost by us.
      if (held.length > 0) await run(['apt-mark', 'hold', ...held])
    }
    return
  }
  const older = changes.filter(([name, version]) => current[name] !== undefined && compareRpmVersions(version, current[name] as string) < 0)
  const newer = changes.filter((change) => !older.includes(change))
  if (newer.length > 0) await run(['dnf', 'install', '-y', '-q', '--disableexcludes=all', ...newer.map(([n, v]) => `${n}-${v}`)])
  if (older.length > 0) await run(['dnf', 'downgrade', '-y', '-q', '--disableexcludes=all', ...older.map(([n, v]) => `${n}-${v}`)])
}

/** `1.31.4-150500.1.1` vs `1.32.4-150500.1.1`: numeric parts left to right (enough for Kubernetes' own packages). */
function compareRpmVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map(Number)
  const pb = b.split(/[.-]/).map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0 && Number.isFinite(d)) return Math.sign(d)
  }
  return 0
}

/** The repository definition's text as it is on the node now. */
export async function readRepositoryFile(transport: Transport, file: string, options: Options = {}): Promise<string> {
  return transport.run(['cat', file], {...options, privileged: true})
}

/** Replaces the repository definition atomically (same directory, then rename), keeping its mode. */
export async function writeRepositoryFile(transport: Transport, file: string, text: string, options: Options = {}): Promise<void> {
  await script(transport, 't="$1.homelab.$$"; printf "%s" "$2" > "$t" && chmod --reference="$1" "$t" 2>/dev/null; mv -f "$t" "$1"', [file, text], {...options, privileged: true})
}
