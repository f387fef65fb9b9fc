// A YAML writer for the documents this project generates (the CRDs): maps, lists, strings,
// integers and booleans, in the block style Kubernetes manifests use, with short all-scalar maps
// and lists on one line in flow style. Written here rather than taken from a library because
// the output is committed and compared byte for byte: it must not change with a dependency's
// version. The generated files are read back by real parsers in the tests (helm, kubectl,
// js-yaml through client-node), which is what proves the quoting.

export type YamlValue = string | number | boolean | YamlValue[] | { [key: string]: YamlValue }

/** Lines at most this long are written in flow style when every value in them is a scalar. */
const FLOW_WIDTH = 120

// Words YAML 1.1 (go-yaml, which kubectl and helm use) reads as booleans, null or special floats.
const RESERVED = /^(y|n|yes|no|true|false|on|off|null|~|\.inf|\.nan|[-+]\.inf)$/i

/** A string as a scalar: plain where no parser could read it as anything else, else quoted. */
function scalarText(s: string, flow: boolean): string {
  const plain = /^[A-Za-z_/.(][\x20-\x7e]*$/.test(s) && !s.endsWith(' ') && !RESERVED.test(s) && !/^\.[0-9]/.test(s) &&
    !s.includes(': ') && !s.includes(' #') && !s.endsWith(':') &&
    // In flow style a plain scalar ends at a comma; prose is quoted there so that it reads as one value.
    !(flow && /[ ,[\]{}:]/.test(s))
  if (plain) return s
  // Single quotes take every printable character ('' is a quote); anything else goes as JSON,
  // whose double-quoted strings are YAML's too.
  if (/^[\x20-\x7e]*$/.test(s)) return `'${s.replaceAll("'", "''")}'`
  return JSON.stringify(s)
}

function isScalar(v: YamlValue): v is string | number | boolean {
  return typeof v !== 'object'
}

function scalar(v: string | number | boolean, flow: boolean): string {
  if (typeof v === 'string') return scalarText(v, flow)
  if (typeof v === 'number' && !Number.isInteger(v)) throw new Error(`yaml: ${v} is not an integer`)
  return String(v)
}

/**
 * The value in flow style, or undefined when it does not go on one line: only scalars, lists of
 * scalars, and maps of those (a map inside a map stays in block style, easier to read).
 */
function flowText(v: YamlValue, nested = false): string | undefined {
  if (isScalar(v)) return scalar(v, true)
  if (Array.isArray(v)) return v.every(isScalar) ? `[${v.map((x) => scalar(x, true)).join(', ')}]` : undefined
  const entries = Object.entries(v)
  if (entries.length === 0) return '{}'
  if (nested) return undefined
  const parts = entries.map(([k, x]) => {
    const inner = flowText(x, true)
    return inner === undefined ? undefined : `${scalar(k, true)}: ${inner}`
  })
  return parts.every((p) => p !== undefined) ? `{ ${parts.join(', ')} }` : undefined
}

/** head is what precedes the value on its line ("key:" or "-"); returns the lines it takes. */
function lines(head: string, v: YamlValue, indent: string): string[] {
  if (isScalar(v)) return [`${indent}${head} ${scalar(v, false)}`]
  const flow = flowText(v)
  if (flow !== undefined && indent.length + head.length + 1 + flow.length <= FLOW_WIDTH) return [`${indent}${head} ${flow}`]
  const inner = `${indent}  `
  if (Array.isArray(v)) return [`${indent}${head}`, ...v.flatMap((x) => item(x, inner))]
  if (head === '-') {
    // A map as a list item starts on the dash's line: "- key: value".
    const body = Object.entries(v).flatMap(([k, x]) => lines(`${scalar(k, false)}:`, x, inner))
    return [`${indent}- ${body[0]!.slice(inner.length)}`, ...body.slice(1)]
  }
  return [`${indent}${head}`, ...Object.entries(v).flatMap(([k, x]) => lines(`${scalar(k, false)}:`, x, inner))]
}

function item(v: YamlValue, indent: string): string[] {
  if (Array.isArray(v) && flowText(v) === undefined) throw new Error('yaml: a list directly inside a list is not supported')
  return lines('-', v, indent)
}

/** One YAML document holding this map, ending with a newline. */
export function toYaml(doc: { [key: string]: YamlValue }): string {
  return Object.entries(doc).flatMap(([k, v]) => lines(`${scalar(k, false)}:`, v, '')).join('\n') + '\n'
}
