import semver, {type SemVer} from 'semver'

import {DEFAULT_DISTRIBUTION, DISTRIBUTIONS} from '../distributions/index.js'
import {VersionError} from '../errors.js'

/** The Kubernetes distributions we upgrade. They share the version scheme but not the suffix. */
export type Distribution = 'k3s' | 'rke2' | 'kubeadm'

// The suffixes and examples are the descriptors' data; this module only knows the shape around them.
const SUFFIX = Object.fromEntries(Object.values(DISTRIBUTIONS).map((d) => [d.name, d.versionSuffix])) as Record<Distribution, string>
const BY_SUFFIX = new Map(Object.values(DISTRIBUTIONS).filter((d) => d.versionSuffix !== '').map((d) => [d.versionSuffix, d.name]))
/** The distribution whose releases are plain Kubernetes versions (`v1.32.4`: kubeadm). */
const PLAIN = Object.values(DISTRIBUTIONS).find((d) => d.versionSuffix === '')?.name

/**
 * The release part at the end of `v1.32.0+k3s1`, `v1.32.0-k3s1` (image tags and SUC's
 * latestVersion write `+` as `-`) and `v1.31.3+rke2r1`. What stands before it is the Kubernetes
 * part, which semver validates (see parseCore).
 */
const RELEASE_RE = new RegExp(`[+-](${[...BY_SUFFIX.keys()].join('|')})([1-9]\\d*)$`)
/** Any distribution suffix at all, even a broken one (parseVersion explains those best). */
const HAS_SUFFIX_RE = new RegExp(`[+-](?:${[...BY_SUFFIX.keys()].join('|')})`)

/**
 * The pre-releases we read: k3s and rke2 publish them undotted in their testing channels
 * (`v1.29.0-rc3+k3s1`), Kubernetes itself dotted (`v1.33.0-rc.1`).
 */
const PRE_RE = /^(alpha|beta|rc)(\.?)(\d+)$/

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

  /** `v1.32.0` (with `-rc1` for a release candidate, `-rc.1` for plain Kubernetes): the Kubernetes part, valid SemVer. */
  kubernetes(): string {
    const dot = SUFFIX[this.distribution] === '' ? '.' : ''
    const pre = this.preRelease ? `-${this.preRelease.kind}${dot}${this.preRelease.number}` : ''
    return `v${this.major}.${this.minor}.${this.patch}${pre}`
  }

  /**
   * The Kubernetes part as a semver.SemVer, for semver's helpers and ranges. The pre-release is
   * dotted (`1.31.0-rc.10`) so that semver orders rc2 before rc10; the release number N is not
   * in it (semver would ignore it as build metadata), so this does not order `+k3s1` and `+k3s2`.
   */
  toSemVer(): SemVer {
    return coreSemVer(this)
  }

  /** The canonical spelling, as `k3s --version` and kubeletVersion print it: `v1.32.0+k3s1`. */
  format(): string {
    return SUFFIX[this.distribution] === '' ? this.kubernetes() : `${this.kubernetes()}+${SUFFIX[this.distribution]}${this.release}`
  }

  /** The image-tag spelling: `v1.32.0-k3s1` (`+` is not allowed in a container image tag). */
  tag(): string {
    return SUFFIX[this.distribution] === '' ? this.kubernetes() : `${this.kubernetes()}-${SUFFIX[this.distribution]}${this.release}`
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
  return DISTRIBUTIONS[distribution ?? DEFAULT_DISTRIBUTION].exampleVersion
}

/** The Kubernetes part of a version: x.y.z and an optional alpha/beta/rc pre-release. */
interface Core {
  major: number
  minor: number
  patch: number
  preRelease?: PreRelease
}

/**
 * `v1.32.0`, `v1.29.0-rc3` and, with `dotted`, Kubernetes' own `v1.33.0-rc.1`. semver validates
 * the x.y.z and the pre-release; on top we want the leading "v", nothing semver would trim or
 * drop (spaces, `=`, build metadata: its normalized version must be the text itself), and only
 * the alpha/beta/rc pre-releases, numbered.
 */
function parseCore(text: string, dotted = false): Core | undefined {
  if (!text.startsWith('v')) return undefined
  const parsed = semver.parse(text.slice(1))
  if (!parsed || parsed.version !== text.slice(1)) return undefined
  const core: Core = {major: parsed.major, minor: parsed.minor, patch: parsed.patch}
  if (parsed.prerelease.length === 0) return core
  const pre = PRE_RE.exec(parsed.prerelease.join('.'))
  if (!pre || (pre[2] && !dotted)) return undefined
  return {...core, preRelease: {kind: pre[1] as PreRelease['kind'], number: Number(pre[3])}}
}

// Our layer over semver's order: it compares `rc10` and `rc3` as text, which puts rc10 first,
// but `rc.10` and `rc.3` as numbers. alpha < beta < rc holds as text.
function coreSemVer(core: Core): SemVer {
  const pre = core.preRelease ? `-${core.preRelease.kind}.${core.preRelease.number}` : ''
  return new semver.SemVer(`${core.major}.${core.minor}.${core.patch}${pre}`)
}

/** The parts of a k3s/rke2 version string (or a plain kubeadm one), or undefined when it is not one. */
function matchVersion(input: string): {core: Core; release: number; distribution: Distribution} | undefined {
  const m = RELEASE_RE.exec(input)
  if (!m) {
    const plain = PLAIN && !HAS_SUFFIX_RE.test(input) ? parseCore(input, true) : undefined
    return plain && PLAIN ? {core: plain, release: 0, distribution: PLAIN} : undefined
  }
  const core = parseCore(input.slice(0, m.index))
  if (!core) return undefined
  return {core, release: Number(m[2]), distribution: BY_SUFFIX.get(m[1]) as Distribution}
}

/** A spelling slip that `accepts` forgives once fixed: surrounding spaces, a missing "v". */
function spellingSlip(input: string, accepts: (fixed: string) => boolean): {problem: string; fixed: string} | undefined {
  const trimmed = input.trim()
  if (trimmed !== input && accepts(trimmed)) return {problem: 'it has surrounding spaces', fixed: trimmed}
  if (accepts(`v${input}`)) return {problem: 'it lacks the leading "v"', fixed: `v${input}`}
  return undefined
}

/** Explains what is wrong with a string that is not a version, in terms of the fix. */
function rejection(input: string, distribution: Distribution | undefined): VersionError {
  const example = expected(distribution)
  const suffix = SUFFIX[distribution ?? DEFAULT_DISTRIBUTION]
  const shown = JSON.stringify(input)
  const slip = spellingSlip(input, (fixed) => matchVersion(fixed) !== undefined)
  if (suffix === '') {
    const name = distribution ?? DEFAULT_DISTRIBUTION
    return new VersionError(`${shown} is not a ${name} version${slip ? `: ${slip.problem}` : ''}`, {
      hint: slip ? `use ${slip.fixed}` : `use a plain Kubernetes version such as ${example}, or a channel such as stable or ${example.replace(/\.\d+$/, '')}`,
    })
  }
  if (slip) {
    return new VersionError(`${shown} is not a ${distribution ?? DEFAULT_DISTRIBUTION} version: ${slip.problem}`, {
      hint: `use ${slip.fixed}`,
    })
  }
  if (/^v?\d+\.\d+\.\d+(?:-(?:alpha|beta|rc)\d+)?$/.test(input)) {
    const v = input.startsWith('v') ? input : `v${input}`
    return new VersionError(`${shown} is not a ${distribution ?? DEFAULT_DISTRIBUTION} version: the release number is missing`, {
      hint: `use the full release name such as ${v}+${suffix}1 (see the project's releases page), or a channel such as ${v.replace(/\.\d+(?:-.*)?$/, '')}`,
    })
  }
  if (new RegExp(`[+-]${suffix}$`).test(input)) {
    return new VersionError(`${shown} is not a ${distribution ?? DEFAULT_DISTRIBUTION} version: "${suffix}" must be followed by the release number`, {
      hint: `use the full release name such as ${input}1`,
    })
  }
  if (looksLikeChannel(input)) {
    return new VersionError(`${shown} is a channel name, not a ${distribution ?? DEFAULT_DISTRIBUTION} version`, {
      hint: `resolve it through the channel server (pass it as a channel), or give an exact version such as ${example}`,
    })
  }
  return new VersionError(`${shown} is not a ${distribution ?? DEFAULT_DISTRIBUTION} version`, {
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
  const m = matchVersion(input)
  if (!m) throw rejection(input, distribution)
  const found = m.distribution
  // A plain `v1.32.4` where a `+k3sN` release is wanted: the release number is what is missing.
  // Without a distribution the default's rules apply: a plain version lacks its release number.
  if (found === PLAIN && found !== distribution) throw rejection(input, distribution)
  if (distribution && found !== distribution) {
    throw new VersionError(`${input} is a ${found} version, but this cluster runs ${distribution}`, {
      hint: `use a ${distribution} version such as ${expected(distribution)}, or set distribution: ${found} in homelab.yaml`,
    })
  }
  const {major, minor, patch, preRelease} = m.core
  return ReleaseVersion.of(major, minor, patch, m.release, found, preRelease)
}

/** True for strings `parseVersion` accepts (either spelling). */
export function isVersionString(input: string, distribution?: Distribution): boolean {
  const m = typeof input === 'string' ? matchVersion(input) : undefined
  if (!m) return false
  // Without a distribution, a plain `v1.31.2` is read as a k3s/rke2 version lacking its release number.
  if (!distribution) return m.distribution !== PLAIN
  return m.distribution === distribution
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
  // A string is read in the other side's distribution (a plain `v1.31.4` is kubeadm's only then).
  const x = typeof a === 'string' ? parseVersion(a, typeof b === 'string' ? undefined : b.distribution) : a
  const y = typeof b === 'string' ? parseVersion(b, x.distribution) : b
  if (x.distribution !== y.distribution) {
    throw new VersionError(`cannot compare ${x.format()} (${x.distribution}) with ${y.format()} (${y.distribution})`, {
      hint: 'use versions of one distribution; a cluster cannot switch between k3s and rke2 by upgrading',
    })
  }
  // semver orders the Kubernetes part (rc numbers included, see coreSemVer); N is ours.
  return semver.compare(x.toSemVer(), y.toSemVer()) || Math.sign(x.release - y.release)
}

/** Ascending order; returns a new array. */
export function sortVersions(versions: readonly ReleaseVersion[]): ReleaseVersion[] {
  return [...versions].sort(compareVersions)
}

/**
 * A plain Kubernetes version, as kubeadm clusters and dl.k8s.io write it: `v1.31.4`, or a
 * pre-release `v1.33.0-rc.1` (k3s's undotted `-rc1` is read too). No `+suffix`: a k3s or rke2
 * release is refused with its Kubernetes part as the fix. Returns a fresh semver.SemVer with the
 * pre-release dotted, so semver's own order and ranges are right for it.
 */
export function parseKubernetesVersion(input: string): SemVer {
  if (typeof input !== 'string') {
    throw new VersionError(`expected a version string, got ${typeof input}`, {hint: 'use the form v1.31.4'})
  }
  const core = parseCore(input, true)
  if (core) return coreSemVer(core)
  const shown = JSON.stringify(input)
  const release = matchVersion(input)
  if (release) {
    const k8s = `v${coreSemVer(release.core).version}`
    throw new VersionError(`${shown} is a ${release.distribution} release, not a plain Kubernetes version`, {
      hint: `use its Kubernetes part ${k8s}`,
    })
  }
  const slip = spellingSlip(input, (fixed) => parseCore(fixed, true) !== undefined)
  throw new VersionError(`${shown} is not a Kubernetes version${slip ? `: ${slip.problem}` : ''}`, {
    hint: slip ? `use ${slip.fixed}` : 'use the form v1.31.4 (or v1.33.0-rc.1 for a pre-release)',
  })
}

// Pre-releases in a range are dotted as our versions are (`>=1.31.0-rc2` means rc.2).
const RANGE_PRE_RE = /(\d+\.\d+\.\d+-)(alpha|beta|rc)(\d+)(?![\w.])/g

/**
 * Whether the Kubernetes part of `version` is in the semver `range` (`>=1.25.0`,
 * `>=1.25.0 <1.32.0`, `1.31.x`). `version` is a k3s/rke2 release (its N plays no part), a plain
 * Kubernetes version (`v1.31.4`, kubeadm) or what parseKubernetesVersion returns. Pre-releases
 * take part in semver's order, rc2 before rc10: `v1.32.0-rc1+k3s1` is `<1.32.0`
 * (write `<1.32.0-0` to leave out 1.32's release candidates) but not `>=1.32.0`.
 * An invalid version or range throws a VersionError.
 */
export function satisfiesRange(version: string | ReleaseVersion | SemVer, range: string): boolean {
  const options = {includePrerelease: true}
  const dotted = typeof range === 'string' ? range.replace(RANGE_PRE_RE, (_, xyz, kind, n) => `${xyz}${kind}.${Number(n)}`) : ''
  const valid = typeof range === 'string' ? semver.validRange(dotted, options) : null
  if (valid === null) {
    throw new VersionError(`${JSON.stringify(range)} is not a version range`, {hint: 'use a semver range such as >=1.25.0 <1.32.0'})
  }
  return semver.satisfies(kubernetesPart(version), valid, options)
}

function kubernetesPart(version: string | ReleaseVersion | SemVer): SemVer {
  if (version instanceof ReleaseVersion) return version.toSemVer()
  if (typeof version !== 'string') return version
  // A suffix makes it a k3s/rke2 release, and parseVersion explains a broken one best.
  return HAS_SUFFIX_RE.test(version) ? parseVersion(version).toSemVer() : parseKubernetesVersion(version)
}
