// Finds the programs that the project's TypeScript and shell scripts start as child processes, so
// a test can check that the one set-up step (scripts/setup.sh and its package table)
// installs every one of them. A static scan, kept honest in two ways: a call whose program it
// cannot name is reported as unresolved (and fails the test) rather than dropped, and the test
// runs the scanner on fixtures that must be caught.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'

export interface Use {
  program: string
  file: string
  line: number
}
export interface Scan {
  uses: Use[]
  /** Call sites whose program could not be named: each one is a gap in the check. */
  unresolved: Use[]
}

/** Every file under dirs (relative to root) whose name passes keep, skipping node_modules etc. */
export function walk(root: string, dirs: string[], keep: (name: string) => boolean): string[] {
  const out: string[] = []
  const visit = (p: string): void => {
    const st = statSync(p, { throwIfNoEntry: false })
    if (!st) return
    if (st.isDirectory()) {
      if (/^(node_modules|dist|\.tools|\.git|\.tap)$/.test(path.basename(p))) return
      for (const n of readdirSync(p).sort()) visit(path.join(p, n))
    } else if (keep(path.basename(p))) out.push(p)
  }
  for (const d of dirs) {
    // A folder renamed away must not shrink the scan unseen.
    if (!statSync(path.join(root, d), { throwIfNoEntry: false })?.isDirectory()) throw new Error(`walk: ${d} is not a folder under ${root}`)
    visit(path.join(root, d))
  }
  return out
}

const SPAWNERS = ['spawn', 'spawnSync', 'execFile', 'execFileSync', 'execSync', 'exec', 'fork']

/**
 * Arguments that are not string literals (a template naming a family of programs, a property),
 * by their exact source text, with the programs they can name. One not listed is unresolved, so
 * a new one must be added here.
 */
export const TEMPLATES: Record<string, string[]> = {
  '`mkfs.${fs}`': ['mkfs.ext4', 'mkfs.xfs', 'mkfs.btrfs'],
  // bench/drivers.ts: the comparison driver, built into .tools/bin by scripts/hostpath-tools.sh.
  'o.bin': ['hostpathplugin'],
}

// The arguments of a call whose '(' ends just before i, up to its closing parenthesis.
function args(src: string, i: number): string[] {
  const out: string[] = []
  let depth = 0
  let quote = ''
  let from = i
  for (let j = i; j < src.length; j++) {
    const c = src.charAt(j)
    if (quote) {
      if (c === '\\') j++
      else if (c === quote) quote = ''
      continue
    }
    if (c === "'" || c === '"' || c === '`') quote = c
    else if ('([{'.includes(c)) depth++
    else if (')]}'.includes(c)) {
      if (depth === 0) return [...out, src.slice(from, j).trim()]
      depth--
    } else if (c === ',' && depth === 0) {
      out.push(src.slice(from, j).trim())
      from = j + 1
    }
  }
  return out
}

const lineOf = (src: string, index: number): number => src.slice(0, index).split('\n').length

// TypeScript with its comments blanked (newlines kept): a `//` that starts a comment follows the
// line's start or a space, and a block comment starts its line.
export function tsCode(src: string): string {
  return src
    .replace(/^\s*\/\*[\s\S]*?\*\//gm, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/(^|\s)\/\/.*$/gm, (c, lead: string) => lead + ' '.repeat(c.length - lead.length))
}

// What an argument names: a list of programs, or undefined when it cannot tell.
function resolveArg(arg: string, src: string, consts: Map<string, string>): string[] | undefined {
  const lit = /^(['"])([^'"]+)\1$/.exec(arg)?.[2] ?? /^`([^`$]+)`$/.exec(arg)?.[1]
  if (lit !== undefined) return [path.basename(lit)]
  if (arg in TEMPLATES) return TEMPLATES[arg]
  if (arg === 'process.execPath') return ['node']
  if (/^[A-Za-z_$][\w$]*$/.test(arg)) {
    const own = new RegExp(`(?:const|let)\\s+${arg}\\s*=\\s*([^\\n;]+)`).exec(src)?.[1]?.trim()
    const value = own ?? consts.get(arg)
    if (value === undefined || value === arg) return undefined
    // path.join(SOMEWHERE, '.tools/bin/kubectl') names the last path component.
    const joined = /^path\.join\(.*['"]([^'"]+)['"]\)$/.exec(value)?.[1]
    if (joined !== undefined) return [path.basename(joined)]
    return resolveArg(value, src, consts)
  }
  return undefined
}

/**
 * Scans TypeScript files for child_process calls. A call whose program is a parameter of the
 * enclosing function (a wrapper such as `tool(cmd, args)` or `spawnProc(name, cmd, ...)`) is
 * followed to the wrapper's calls in its own file and in the files that import it.
 */
export function scanTs(files: string[]): Scan {
  const sources = new Map(files.map((f) => [f, tsCode(readFileSync(f, 'utf8'))]))
  // Exported string constants (`export const PROMTOOL = '/usr/bin/promtool'`) reach importers.
  const consts = new Map<string, string>()
  for (const src of sources.values()) {
    for (const m of src.matchAll(/export const ([A-Za-z_$][\w$]*)\s*=\s*([^\n;]+)/g)) consts.set(m[1]!, m[2]!.trim())
  }
  const uses: Use[] = []
  const unresolved: Use[] = []
  const seen = new Set<string>()
  const visit = (file: string, callee: string, argIndex: number): void => {
    const key = `${file}\0${callee}`
    if (seen.has(key)) return
    seen.add(key)
    const src = sources.get(file)!
    for (const m of src.matchAll(new RegExp(`(?<![.\\w$])${callee}\\s*\\(`, 'g'))) {
      const arg = args(src, m.index! + m[0].length)[argIndex] ?? ''
      const line = lineOf(src, m.index!)
      // A definition (`function tool(cmd: string, ...)`) is not a call.
      if (/^[\w$]+\??\s*:/.test(arg) || /function\s+$/.test(src.slice(Math.max(0, m.index! - 16), m.index!))) continue
      const named = resolveArg(arg, src, consts)
      if (named) {
        for (const program of named) uses.push({ program, file, line })
        continue
      }
      const wrapper = enclosingWrapper(src, m.index!, arg)
      if (!wrapper) {
        unresolved.push({ program: arg, file, line })
        continue
      }
      const imports = new RegExp(`import\\s*\\{[^}]*\\b${wrapper.name}\\b[^}]*\\}\\s*from`)
      for (const [f, s] of sources) if (f === file || imports.test(s)) visit(f, wrapper.name, wrapper.index)
    }
  }
  for (const [file, src] of sources) {
    if (!/from ['"](node:)?child_process['"]|import\(['"](node:)?child_process['"]\)/.test(src)) continue
    const callees = new Set(SPAWNERS.filter((s) => new RegExp(`\\b${s}\\b`).test(src)))
    // `const run = promisify(execFile)` makes `run` a spawner too.
    for (const m of src.matchAll(/const (\w+)\s*=\s*promisify\((\w+)\)/g)) if (callees.has(m[2]!)) callees.add(m[1]!)
    for (const c of callees) visit(file, c, 0)
  }
  return { uses, unresolved }
}

// The function around index that takes param, and param's position among its parameters.
function enclosingWrapper(src: string, index: number, param: string): { name: string; index: number } | undefined {
  if (!/^[A-Za-z_$][\w$]*$/.test(param)) return undefined
  const before = src.slice(0, index)
  const re = new RegExp(`(?:function\\s+(\\w+)|(?:const|let)\\s+(\\w+)\\s*=\\s*(?:async\\s*)?)\\s*\\(([^)]*\\b${param}\\b[^)]*)\\)`, 'g')
  let last: RegExpMatchArray | undefined
  for (const m of before.matchAll(re)) last = m
  if (!last) return undefined
  const params = last[3]!.split(',').map((p) => p.trim().split(/[\s:?=]/)[0])
  return { name: last[1] ?? last[2]!, index: params.indexOf(param) }
}

// Shell words that are not programs: keywords and builtins (bash's `compgen -k -b`).
const SH_KEYWORDS = new Set(
  ('if then else elif fi case esac for select while until do done in function time coproc { } ! [[ ]] ' +
    '. : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs ' +
    'disown echo enable eval exec exit export false fc fg getopts hash help history jobs kill let local ' +
    'logout mapfile popd printf pushd pwd read readarray readonly return set shift shopt source suspend ' +
    'test times trap true type typeset ulimit umask unalias unset wait').split(' '),
)
// Commands that run their arguments as a command, with the options of theirs that take a value.
const SH_RUNNERS: Record<string, string[]> = {
  exec: [], xargs: ['-n', '-I', '-P', '-d'], timeout: ['-k', '-s'], env: ['-u'], nohup: [], nice: ['-n'],
  setsid: [], unshare: ['--propagation'], chroot: [], flock: [],
}
/** table[key], or undefined when there is no key (no word left in the segment). */
const entry = <V>(table: Record<string, V>, key: string | undefined): V | undefined => (key === undefined ? undefined : table[key])

interface Frame { kind: 'code' | 'sq' | 'dq' | 'subst' | 'brace' | 'arith' | 'array'; depth: number }

/**
 * A script with everything that is not code blanked to spaces (newlines kept, so line numbers
 * hold): comments, quoted text (but not a command substitution inside double quotes), parameter
 * expansions, arithmetic, array literals and here-document bodies.
 */
export function shellCode(src: string): string {
  let out = ''
  // The innermost construct open at i, and the ones around it. A subst, brace, arith or array
  // frame counts the brackets opened inside it in depth, and ends at its closing one at depth 0.
  let frame: Frame = { kind: 'code', depth: 0 }
  const outer: Frame[] = []
  const push = (kind: Frame['kind'], depth = 0): void => { outer.push(frame); frame = { kind, depth } }
  const pop = (): void => { frame = outer.pop()! } // only a pushed frame ends, never the outermost code
  let heredoc: string | undefined
  const blank = (c: string): string => (c === '\n' ? '\n' : ' ')
  for (let i = 0; i < src.length; i++) {
    const c = src.charAt(i)
    const top = frame.kind
    if (c === '\n' && heredoc !== undefined) {
      // Skip the body up to and including the delimiter line.
      let j = i + 1
      for (;;) {
        const e = src.indexOf('\n', j)
        const line = src.slice(j, e === -1 ? src.length : e)
        out += '\n'
        j = e === -1 ? src.length : e + 1
        if (line.trim() === heredoc || e === -1) break
      }
      out += '\n'
      i = j - 1
      heredoc = undefined
      continue
    }
    if (top === 'sq') {
      if (c === "'") pop()
      out += blank(c)
    } else if (top === 'dq') {
      if (c === '\\') { out += '  '; i++ } else if (c === '"') { pop(); out += '"' } else if (c === '$' && src[i + 1] === '(' && src[i + 2] !== '(') { push('subst'); out += '$('; i++ } else out += c === '$' || c === '\n' ? c : '_' // one word, as the shell sees it
    } else if (top === 'brace' || top === 'arith' || top === 'array') {
      const [open, close] = top === 'brace' ? ['{', '}'] : ['(', ')']
      if (c === open) frame.depth++
      else if (c === close) {
        if (frame.depth === 0) pop()
        else frame.depth--
      }
      out += blank(c)
    } else {
      // code or subst
      const prev = i === 0 ? '\n' : src.charAt(i - 1)
      if (c === '\\') { out += c + (src[i + 1] ?? ''); i++ } else if (c === '#' && /\s|[;(]/.test(prev)) {
        const e = src.indexOf('\n', i)
        const stop = e === -1 ? src.length : e
        out += ' '.repeat(stop - i)
        i = stop - 1
      } else if (c === "'") { push('sq'); out += ' ' } else if (c === '"') { push('dq'); out += '"' } else if (c === '$' && src[i + 1] === '{') { push('brace'); out += '$ '; i++ } else if (c === '$' && src[i + 1] === '(' && src[i + 2] === '(') { push('arith', 1); out += '   '; i += 2 } else if (c === '=' && src[i + 1] === '(') { push('array'); out += '= '; i++ } else if (c === '(' && src[i + 1] === '(' && /\s/.test(prev)) { push('arith', 1); out += '  '; i++ } else if (c === '$' && src[i + 1] === '(') { push('subst'); out += '$('; i++ } else if (top === 'subst' && c === '(') { frame.depth++; out += c } else if (top === 'subst' && c === ')') {
        if (frame.depth === 0) { pop(); out += ';' } else { frame.depth--; out += c }
      } else if (c === '<' && src[i + 1] === '<' && src[i + 2] !== '<') {
        const m = /^<<-?\s*['"]?(\w+)['"]?/.exec(src.slice(i))
        if (m) { heredoc = m[1]; out += ' '.repeat(m[0].length); i += m[0].length - 1 } else out += c
      } else out += c
    }
  }
  return out
}

/** The words in command position of a shell script, with their line numbers. */
export function shellCommands(src: string, fnRunners: Record<string, number> = {}): { word: string; line: number }[] {
  const out: { word: string; line: number }[] = []
  const lines = shellCode(src).split('\n')
  let cont = false
  for (const [n, line] of lines.entries()) {
    // case arms: `pattern)` or `a | b)` at the start of a line is not a command.
    const text = line
      .replace(/^\s*\(?[^\s()]+(\s*\|\s*[^\s()]+)*\)/, ' ')
      .replace(/\d*>&\d*-?|&>>?/g, ' ') // fd duplication (2>&1, >&2, &>) is not a command separator
    const wasCont = cont
    cont = /\\\s*$/.test(text)
    // The words after a line continuation are arguments, not commands.
    if (wasCont) continue
    for (const seg of text.split(/\$\(|`|\|\||&&|;;|[|;&(){}]|\b(?:then|do|else|if|elif|while|until)\b|!/)) {
      const words = (seg ?? '').trim().split(/\s+/).filter(Boolean)
      let i = 0
      const at = (k: number): string => words[k] ?? '' // past the end: no word
      const skipNoise = (): void => {
        // VAR=value prefixes and redirections (2>/dev/null, > file).
        while (i < words.length && (/^[A-Za-z_]\w*\+?=/.test(at(i)) || /^\d*[<>]/.test(at(i)))) {
          if (/^\d*[<>]+&?$/.test(at(i))) i++
          i++
        }
      }
      skipNoise()
      let word = words[i]
      if (word === 'command' || word === 'type' || word === 'hash') continue // lookups, not runs
      // A function of the scripts that runs its arguments (`wait_until 60 etcd curl ...`).
      for (let shift = entry(fnRunners, word); shift !== undefined; shift = entry(fnRunners, word)) {
        i += 1 + shift
        word = words[i]
      }
      for (let valued = entry(SH_RUNNERS, word); valued !== undefined; valued = entry(SH_RUNNERS, word)) {
        const runner = word
        i++
        while (i < words.length && (at(i).startsWith('-') || (runner === 'timeout' && /^[\d.]+[smhd]?$/.test(at(i))))) {
          i += valued.includes(at(i)) ? 2 : 1
        }
        if (runner === 'chroot' || runner === 'flock') i++ // a directory or a lock comes first
        skipNoise()
        word = words[i]
      }
      if (word === undefined || /[$`=*\]"]|^\W|^_+$/.test(word) || SH_KEYWORDS.has(word)) continue
      out.push({ word, line: n + 1 })
    }
  }
  return out
}

// Absolute paths to system programs anywhere in code (`start containerd "$run" /usr/bin/containerd`)
// name a program too, even when a function of the script runs it.
const SYSTEM_PROGRAM = /(?<![\w./-])\/(?:usr\/)?s?bin\/[\w.+-]+|\/usr\/lib\/cni\/[\w.+-]+/g

/** Shell scripts: programs in command position, less the functions the scripts define. */
export function scanShell(files: string[]): Scan {
  const sources = files.map((f) => [f, readFileSync(f, 'utf8')] as const)
  const functions = new Set<string>()
  // Functions whose body runs "$@" as a command, with how many leading arguments they shift off.
  const fnRunners: Record<string, number> = {}
  for (const [, src] of sources) {
    for (const m of src.matchAll(/^\s*(?:function\s+)?([\w-]+)\s*\(\)/gm)) functions.add(m[1]!)
    // Multi-line bodies only: the first line that is just "}" closes them.
    for (const m of src.matchAll(/^(?:function\s+)?([\w-]+)\s*\(\)\s*\{\s*\n([\s\S]*?)^\}/gm)) {
      if (/^\s*(?:(?:setsid|exec|nohup)\s+)?"\$@"/m.test(m[2]!)) fnRunners[m[1]!] = Number(/\bshift (\d+)/.exec(m[2]!)?.[1] ?? 0)
    }
  }
  const uses: Use[] = []
  for (const [file, src] of sources) {
    for (const { word, line } of shellCommands(src, fnRunners)) {
      if (functions.has(word)) continue
      uses.push({ program: path.basename(word), file, line })
    }
    const code = shellCode(src)
    for (const m of code.matchAll(SYSTEM_PROGRAM)) uses.push({ program: m[0], file, line: lineOf(code, m.index!) })
  }
  return { uses, unresolved: [] }
}
