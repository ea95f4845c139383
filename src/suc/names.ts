/**
 * The Kubernetes rules for the names that end up in the Plans (apimachinery's validation, and
 * the image reference grammar the container runtimes parse), each with its rule in words and an
 * example, so a refusal says what is allowed and not only what is wrong.
 */
import {UsageError} from '../errors.js'

export interface NameRule {
  /** What a value that breaks it is not: `"Bad_Namespace!" is not a valid <noun>`. */
  noun: string
  /** What the rule allows, in words. */
  rule: string
  test: (value: string) => boolean
}

const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/
const QUALIFIED_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$/
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/

/** IsDNS1123Label: namespaces, and plan names (they become the name part of a node label). */
export const DNS_LABEL_RULE: NameRule = {
  noun: 'name',
  rule: 'at most 63 characters: lowercase letters, digits and "-", starting and ending with a letter or digit',
  test: (value) => value.length <= 63 && DNS_LABEL.test(value),
}

/** IsDNS1123Subdomain: Secret names (imagePullSecrets). */
export const DNS_SUBDOMAIN_RULE: NameRule = {
  noun: 'name',
  rule: 'at most 253 characters: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
  test: (value) => value.length <= 253 && DNS_SUBDOMAIN.test(value),
}

/** IsQualifiedName: label keys, taint and toleration keys. */
export const LABEL_KEY_RULE: NameRule = {
  noun: 'label key',
  rule:
    'a label key is [prefix/]name: the name at most 63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit; ' +
    'the prefix, if any, a DNS subdomain (lowercase letters, digits, "-" and ".", at most 253 characters)',
  test: (key) => {
    const slash = key.lastIndexOf('/')
    const name = slash < 0 ? key : key.slice(slash + 1)
    const prefix = slash < 0 ? undefined : key.slice(0, slash)
    return name.length <= 63 && QUALIFIED_NAME.test(name) && (prefix === undefined || DNS_SUBDOMAIN_RULE.test(prefix))
  },
}

/** IsValidLabelValue: label values, taint and toleration values. */
export const LABEL_VALUE_RULE: NameRule = {
  noun: 'label value',
  rule: 'a label value is empty or at most 63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
  test: (value) => value.length <= 63 && LABEL_VALUE.test(value),
}

// distribution/reference: [domain[:port]/]component[/component...], without tag or digest here.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const REPOSITORY = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`)

/** An image repository as the container runtimes parse it (the controller adds the tag). */
export const IMAGE_REPOSITORY_RULE: NameRule = {
  noun: 'image repository',
  rule:
    'an image repository is [registry[:port]/]path: each part of the path lowercase letters and digits, ' +
    'with ".", "_", "__" or "-" only between them, parts joined by "/", at most 255 characters in all',
  test: (value) => value.length <= 255 && REPOSITORY.test(value),
}

/**
 * Refuses `value` (exit 2) unless it keeps `rule`. `what` names it where the user wrote it
 * (`--namespace`), `example` is a flag that works.
 */
export function checkName(value: string, rule: NameRule, what: string, example: string): void {
  if (rule.test(value)) return
  throw new UsageError(`${what} ${JSON.stringify(value)} is not a valid ${rule.noun}: ${rule.rule}`, {hint: `e.g. ${example}`})
}
