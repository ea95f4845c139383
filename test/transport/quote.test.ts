import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {test} from 'node:test'
import {quoteArg, quoteArgv, raw, shellScript} from '../../src/transport/quote.js'

const hostile = [
  '',
  ' ',
  'two words',
  "it's",
  "''",
  '"double"',
  '$(touch /tmp/homelab-quote-pwned)',
  '`touch /tmp/homelab-quote-pwned`',
  '$HOME ${PATH}',
  'a\nb\n',
  '\t tab',
  '-n',
  '--help',
  '-e \\n',
  'back\\slash',
  '; rm -rf / #',
  '| cat',
  '&& echo hi',
  '> /tmp/x',
  '*',
  '~',
  '!bang',
  "'; echo pwned; '",
  'ünïcödé ✓',
]

/** What `sh` makes of a command line: each argument NUL-terminated, exactly as received. */
function shellWords(commandLine: string): string[] {
  const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${commandLine}`], {encoding: 'utf8'})
  return out.split('\0').slice(0, -1)
}

test('every hostile string survives a real /bin/sh unchanged', () => {
  for (const s of hostile) {
    assert.deepEqual(shellWords(quoteArg(s)), [s], `round trip of ${JSON.stringify(s)}`)
  }
  assert.deepEqual(shellWords(hostile.map(quoteArg).join(' ')), hostile)
})

test('plain words stay readable, anything else is single-quoted', () => {
  assert.equal(quoteArg('k3s'), 'k3s')
  assert.equal(quoteArg('/usr/local/bin/k3s'), '/usr/local/bin/k3s')
  assert.equal(quoteArg('--name=pre-upgrade'), '--name=pre-upgrade')
  assert.equal(quoteArg(''), "''")
  assert.equal(quoteArg("it's"), `'it'\\''s'`)
  assert.equal(quoteArg('$(x)'), `'$(x)'`)
  assert.equal(quoteArgv(['echo', 'a b']), `echo 'a b'`)
})

test('NUL bytes and empty commands are refused', () => {
  assert.throws(() => quoteArg('a\0b'), /NUL/)
  assert.throws(() => quoteArgv([]), /empty/)
})

test('shellScript quotes parts and keeps caller operators', () => {
  const script = shellScript([['test', '-e', '/tmp/a b'], raw('&&'), ['printf', '%s\\0', '$(x)']])
  assert.equal(script, `test -e '/tmp/a b' && printf '%s\\0' '$(x)'`)
  const out = execFileSync('/bin/sh', ['-c', shellScript([['true'], raw('&&'), ['printf', '%s|', '`id`', "a'b"]])], {encoding: 'utf8'})
  assert.equal(out, "`id`|a'b|")
})
