/**
 * How a node gets its system images, as pre-flight reads it: the archives in the agent's image
 * dir (air-gapped by archive), a registries.yaml with mirrors (a private registry), or neither
 * (pulled from the internet). The shell snippets run inside the binary probe (binary-probe.ts);
 * the parsers judge their output.
 */
import type {Arch, DistributionDescriptor} from '../distributions/index.js'
import {parseRegistriesYaml} from './registries-yaml.js'

export type ImagesMode = 'archive' | 'registry' | 'pull'
export type ImagesSetting = 'auto' | ImagesMode

/** One file in the agent's image dir. */
export interface ImageDirEntry {
  file: string
  size: number
}

/**
 * `<size> <name>` per regular file in `$1` (nothing when the dir does not exist). `ls -ln`
 * rather than `wc -c`, which some coreutils (BusyBox) answer by reading the whole archive.
 */
export const IMAGE_DIR_SCRIPT = 'for f in "$1"/*; do if [ -f "$f" ]; then printf \'%s %s\\n\' "$(ls -ln -- "$f" | awk \'{print $5}\')" "${f##*/}"; fi; done'

/** The registries file's text, or nothing when there is none. */
export const REGISTRIES_SCRIPT = 'if [ -f "$1" ]; then cat -- "$1"; fi'

/** `df -Pk` of the filesystem that holds `$1`, or would once it is created (its nearest existing parent; no dirname process per level). */
export const FREE_KB_NEAREST_SCRIPT = 'd=$1; while [ ! -d "$d" ]; do case $d in */*) d=${d%/*}; d=${d:-/} ;; *) d=. ;; esac; done; df -Pk "$d"'

export function parseImageDir(out: string): ImageDirEntry[] {
  return out.split('\n').flatMap((line) => {
    const match = /^(\d+) (.+)$/.exec(line)
    return match ? [{size: Number(match[1]), file: match[2] as string}] : []
  })
}

/**
 * True when a registries.yaml names at least one mirror (a mirror-less file configures only auth
 * or TLS). A malformed file is a PreflightError naming it: k3s would not start with it either.
 */
export function hasMirrors(registriesYaml: string | undefined, source: string): boolean {
  if (!registriesYaml?.trim()) return false
  return Object.keys(parseRegistriesYaml(registriesYaml, source).mirrors).length > 0
}

export interface NodeImagesFacts {
  /** The images dir as seen by the node, its files, and the free space where they live. */
  dir: string
  entries: ImageDirEntry[]
  freeKb: number
  registriesPath: string
  registriesYaml: string | undefined
}

export interface ImagesDecision {
  mode: ImagesMode
  /** Why this mode: what was found, or that homelab.yaml says so. */
  reason: string
  /** Archive mode: the release's archives this node holds now (their names stay), else the default one. */
  archives: string[]
}

/** The node's mode (install.images, or what is on the node) and, in archive mode, the archives it is to receive. */
export function decideImages(distribution: DistributionDescriptor, arch: Arch, facts: NodeImagesFacts, setting: ImagesSetting): ImagesDecision {
  const published = distribution.images.archives(arch)
  const held = facts.entries.map((e) => e.file).filter((file) => published.includes(file))
  const archives = held.length > 0 ? held : [published[0] as string]
  if (setting !== 'auto') return {mode: setting, reason: 'install.images in homelab.yaml', archives: setting === 'archive' ? archives : []}
  if (held.length > 0) return {mode: 'archive', reason: `${held.join(', ')} in ${facts.dir}`, archives}
  if (hasMirrors(facts.registriesYaml, facts.registriesPath)) return {mode: 'registry', reason: `mirrors in ${facts.registriesPath}`, archives: []}
  return {mode: 'pull', reason: `no images archive in ${facts.dir}, no mirrors in ${facts.registriesPath}`, archives: []}
}
