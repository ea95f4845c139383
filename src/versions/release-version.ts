import {VersionError} from '../errors.js'

/** The Kubernetes distributions we upgrade. They share the version scheme but not the suffix. */
export type Distribution = 'k3s' | 'rke2'

const SUFFIX: Record<Distribution, string> = {k3s: 'k3s', rke2: 'rke2r'}

/**
 * `v1.32.0+k3s1`, `v1.32.0-k3s1` (image tags and SUC's latestVersion write `+` as `-`),
 * `v1.31.3+rke2r1`, and release candidates from the testing channels (`v1.29.0-rc3+k3s1`).
 */
const VERSION_RE = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-(alpha|beta|rc)(\d+))?[+-](k3s|rke2r)([1-9]\d*)$/

/** Channel ids: `stable`, `latest`, `testing`, one per minor (`v1.31`) and `v1.18-testing`. */
const CHANNEL_RE = /^(?:[a-z][a-z0-9]*(?:-[a-z0-9]+)*|v?\d+\.\d+(?:-[a-z]+)?)$/

export type PreRelease = {kind: 'alpha' | 'beta' | 'rc'; number: number}

/**
 * One k3s or rke2 release. Immutable; build it with `parseVersion` (or `ReleaseVersion.parse`).
 * Ordering (see compareVersions) uses the release number N of `+k3sN`, which SemVer ignores.
 */
export class ReleaseVersion {
  private constructor(
    readonly major: number,
    readonly minor: number,
    readonly patch: number,
    /** N in `+k3sN` / `+rke2rN`. */
    readonly release: number,
    readonly distribution: Distribution,
    readonly preRelease?: PreRelease,
  ) {
    Object.freeze(this)
  }

  static parse(input: string, distribution?: Distribution): ReleaseVersion {
    return parseVersion(input, distribution)
  }

  /** From parts already validated (parseVersion validates strings). */
  static of(
    major: number,
    minor: number,
    patch: number,
    release: number,
    distribution: Distribution,
    preRelease?: PreRelease,
  ): ReleaseVersion {
    return new ReleaseVersion(major, minor, patch, release, distribution, preRelease)
  }

  /** `v1.32.0` (with `-rc1` for a release candidate): the Kubernetes part, valid SemVer. */
  kubernetes(): string {
    const pre = this.preRelease ? `-${this.preRelease.kind}${this.preRelease.number}` : ''
    return `v${this.major}.${this.minor}.${this.patch}${pre}`
  }

  /** The canonical spelling, as `k3s --version` and kubeletVersion print it: `v1.32.0+k3s1`. */
  format(): string {
    return `${this.kubernetes()}+${SUFFIX[this.distribution]}${this.release}`
  }

  /** The image-tag spelling: `v1.32.0-k3s1` (`+` is not allowed in a container image tag). */
  tag(): string {
    return `${this.kubernetes()}-${SUFFIX[this.distribution]}${this.release}`
  }

  /** For a URL path segment: `v1.32.0%2Bk3s1`. */
  urlEncoded(): string {
    return encodeURIComponent(this.format())
  }

  /** The minor line, which is also the id of that minor's channel: `v1.32`. */
  minorLine(): string {
    return `v${this.major}.${this.minor}`
  }

  compare(other: ReleaseVersion): number {
    return compareVersions(this, other)
  }

  equals(other: ReleaseVersion): boolean {
    return this.distribution === other.distribution && compareVersions(this, other) === 0
  }

  toString(): string {
    return this.format()
  }

  toJSON(): string {
    return this.format()
  }
}

function expected(distribution: Distribution | undefined): string {
  return distribution === 'rke2' ? 'v1.31.3+rke2r1' : 'v1.32.0+k3s1'
}

/** Explains what is wrong with a string that is not a version, in terms of the fix. */
function rejection(input: string, distribution: Distribution | undefined): VersionError {
  const example = expected(distribution)
  const suffix = SUFFIX[distribution ?? 'k3s']
  const shown = JSON.stringify(input)
  const trimmed = input.trim()
  if (trimmed !== input && VERSION_RE.test(trimmed)) {
    return new VersionError(`${shown} is not a ${distribution ?? 'k3s'} version: it has surrounding spaces`, {
      hint: `use ${trimmed}`,
    })
  }
  if (VERSION_RE.test(`v${input}`)) {
    return new VersionError(`${shown} is not a ${distribution ?? 'k3s'} version: it lacks the leading "v"`, {
      hint: `use v${input}`,
    })
  }
  if (/^v?\d+\.\d+\.\d+(?:-(?:alpha|beta|rc)\d+)?$/.test(input)) {
    const v = input.startsWith('v') ? input : `v${input}`
    return new VersionError(`${shown} is not a ${distribution ?? 'k3s'} version: the release number is missing`, {
      hint: `use the full release name such as ${v}+${suffix}1 (see the project's releases page), or a channel such as ${v.replace(/\.\d+(?:-.*)?$/, '')}`,
    })
  }
  if (new RegExp(`[+-]${suffix}$`).test(input)) {
    return new VersionError(`${shown} is not a ${distribution ?? 'k3s'} version: "${suffix}" must be followed by the release number`, {
      hint: `use the full release name such as ${input}1`,
    })
  }
  if (looksLikeChannel(input)) {
    return new VersionError(`${shown} is a channel name, not a ${distribution ?? 'k3s'} version`, {
      hint: `resolve it through the channel server (pass it as a channel), or give an exact version such as ${example}`,
    })
  }
  return new VersionError(`${shown} is not a ${distribution ?? 'k3s'} version`, {
    hint: `use the form ${example} (or ${example.replace('+', '-')})`,
  })
}

/**
 * Parses `v1.32.0+k3s1` or `v1.32.0-k3s1` (and the rke2 forms). With `distribution`, a version
 * of the other distribution is refused; without it, the suffix decides.
 */
export function parseVersion(input: string, distribution?: Distribution): ReleaseVersion {
  if (typeof input !== 'string') {
    throw new VersionError(`expected a version string, got ${typeof input}`, {
      hint: `use the form ${expected(distribution)}`,
    })
  }
  const m = VERSION_RE.exec(input)
  if (!m) throw rejection(input, distribution)
  const [, major, minor, patch, preKind, preNumber, suffix, release] = m
  const found: Distribution = suffix === 'k3s' ? 'k3s' : 'rke2'
  if (distribution && found !== distribution) {
    throw new VersionError(`${input} is a ${found} version, but this cluster runs ${distribution}`, {
      hint: `use a ${distribution} version such as ${expected(distribution)}, or set distribution: ${found} in homelab.yaml`,
    })
  }
  const pre = preKind ? {kind: preKind as PreRelease['kind'], number: Number(preNumber)} : undefined
  return ReleaseVersion.of(Number(major), Number(minor), Number(patch), Number(release), found, pre)
}

/** True for strings `parseVersion` accepts (either spelling). */
export function isVersionString(input: string, distribution?: Distribution): boolean {
  const m = typeof input === 'string' ? VERSION_RE.exec(input) : null
  if (!m) return false
  return !distribution || (m[6] === 'k3s' ? 'k3s' : 'rke2') === distribution
}

/**
 * True for what can only be a channel id: `stable`, `latest`, `testing`, `v1.31`, `1.31`,
 * `v1.18-testing`. `v1.31.2` is neither a channel nor a version (the release number is missing),
 * so it is false here and parseVersion explains the problem.
 */
export function looksLikeChannel(input: string): boolean {
  return typeof input === 'string' && CHANNEL_RE.test(input) && !isVersionString(input)
}

/**
 * Orders by major.minor.patch, then a release candidate before its release, then the release
 * number N (`+k3s1` < `+k3s2`). Different distributions have no order: that throws.
 */
export function compareVersions(a: ReleaseVersion | string, b: ReleaseVersion | string): number {
  const x = typeof a === 'string' ? parseVersion(a) : a
  const y = typeof b === 'string' ? parseVersion(b) : b
  if (x.distribution !== y.distribution) {
    throw new VersionError(`cannot compare ${x.format()} (${x.distribution}) with ${y.format()} (${y.distribution})`, {
      hint: 'use versions of one distribution; a cluster cannot switch between k3s and rke2 by upgrading',
    })
  }
  return (
    Math.sign(x.major - y.major) ||
    Math.sign(x.minor - y.minor) ||
    Math.sign(x.patch - y.patch) ||
    comparePreRelease(x.preRelease, y.preRelease) ||
    Math.sign(x.release - y.release)
  )
}

const PRE_ORDER = {alpha: 0, beta: 1, rc: 2} as const

// Numeric on purpose: SemVer compares `rc10` and `rc3` as text, which puts rc10 first.
function comparePreRelease(a: PreRelease | undefined, b: PreRelease | undefined): number {
  if (!a || !b) return a ? -1 : b ? 1 : 0
  return Math.sign(PRE_ORDER[a.kind] - PRE_ORDER[b.kind]) || Math.sign(a.number - b.number)
}

/** Ascending order; returns a new array. */
export function sortVersions(versions: readonly ReleaseVersion[]): ReleaseVersion[] {
  return [...versions].sort(compareVersions)
}
