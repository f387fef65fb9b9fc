// A small builder of the OpenAPI v3 schemas the API server checks custom resources against, where
// one call gives both the schema (data) and the TypeScript type (inferred with Infer). model.ts
// writes each stored object once with it; the types the code uses and the CRDs (crds.ts) both
// come from there, so a field cannot be added to one and not the other. That matters because the
// API server prunes every field a CRD's structural schema does not declare: a field only the
// TypeScript knew would be dropped silently, in a cluster only (the local store keeps it).
//
// It covers what the model uses and no more: strings, enums, integers, booleans, arrays, string
// maps, objects with required and optional fields, and objects holding exactly one of their
// fields. Every node is a structural-schema node (a type, properties or items declared), which
// is what lets the API server accept the CRD and prune unknown fields.

/** The part of the API's JSONSchemaProps these builders write. */
export interface JsonSchema {
  type: 'object' | 'array' | 'string' | 'integer' | 'boolean'
  description?: string
  format?: 'date-time'
  enum?: readonly string[]
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  minProperties?: number
  maxProperties?: number
  items?: JsonSchema
  additionalProperties?: JsonSchema
  properties?: Record<string, JsonSchema>
  required?: string[]
}

// Only ever a type: it ties a node to the TypeScript type of the values it admits.
declare const VALUE: unique symbol

/** A schema node; T is the TypeScript type of what it admits, O whether a parent may omit it. */
export interface Node<T, O extends boolean = false> {
  readonly schema: JsonSchema
  readonly optional: O
  readonly [VALUE]?: T
}

/** The TypeScript type of the values a node admits. */
export type Infer<N> = N extends Node<infer T, boolean> ? T : never

type AnyNode = Node<unknown, boolean>
type Props = Record<string, AnyNode>
// Flattens an intersection so editors show one object type.
type Simplify<T> = { [K in keyof T]: T[K] } & {}
type ObjectOf<P extends Props> = Simplify<
  { [K in keyof P as P[K] extends Node<unknown, true> ? never : K]: Infer<P[K]> } &
  { [K in keyof P as P[K] extends Node<unknown, true> ? K : never]?: Infer<P[K]> }
>
// One member per field, each with that field alone.
type OneKeyOf<P extends Props> = { [K in keyof P]: { [J in K]: Infer<P[J]> } }[keyof P]

interface Described {
  /** Shown by `kubectl explain`; say what the field means to the driver. */
  description?: string
}
export interface StringOptions extends Described {
  pattern?: RegExp
  minLength?: number
  maxLength?: number
  format?: 'date-time'
}
export interface IntegerOptions extends Described {
  minimum?: number
}

// The order keys are written in, whatever order a builder's options came in: the generated
// CRDs must not change when options are merely reordered.
const KEY_ORDER = [
  'type', 'description', 'format', 'enum', 'pattern', 'minLength', 'maxLength', 'minimum', 'minProperties', 'maxProperties',
  'items', 'additionalProperties', 'properties', 'required',
] as const satisfies readonly (keyof JsonSchema)[]
// A key added to JsonSchema but not to KEY_ORDER would be dropped from the output: refuse it.
const everyKeyOrdered: [Exclude<keyof JsonSchema, (typeof KEY_ORDER)[number]>] extends [never] ? true : never = true

function node<T>(schema: JsonSchema): Node<T> {
  const ordered = Object.fromEntries(KEY_ORDER.filter((k) => schema[k] !== undefined).map((k) => [k, schema[k]]))
  return { schema: ordered as unknown as JsonSchema, optional: false }
}

/** A field listed as optional in its object: absent is allowed, and the TypeScript field is `?:`. */
export function optional<T>(n: Node<T>): Node<T, true> {
  return { schema: n.schema, optional: true }
}

export function string(o: StringOptions = {}): Node<string> {
  const { pattern, ...rest } = o
  return node({ type: 'string', ...rest, ...(pattern && { pattern: pattern.source }) })
}

/** A string that is one of values; its TypeScript type is their union. */
export function enumOf<const V extends readonly [string, ...string[]]>(values: V, o: Described = {}): Node<V[number]> {
  return node({ type: 'string', ...o, enum: values })
}

export function integer(o: IntegerOptions = {}): Node<number> {
  return node({ type: 'integer', ...o })
}

export function boolean(o: Described = {}): Node<boolean> {
  return node({ type: 'boolean', ...o })
}

export function arrayOf<T>(items: Node<T>, o: Described = {}): Node<T[]> {
  return node({ type: 'array', ...o, items: items.schema })
}

/** An object whose keys are free strings and whose values all have one schema. */
export function mapOf<T>(values: Node<T>, o: Described = {}): Node<Record<string, T>> {
  return node({ type: 'object', ...o, additionalProperties: values.schema })
}

/** An object with these fields; those not wrapped in optional() are required. */
export function object<P extends Props>(props: P, o: Described = {}): Node<ObjectOf<P>> {
  const required = Object.keys(props).filter((k) => !props[k]!.optional)
  return node({
    type: 'object', ...o,
    properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, v.schema])),
    ...(required.length > 0 && { required }),
  })
}

/** An object holding exactly one of these fields (a tagged choice); each field is required in its member. */
export function oneKeyOf<P extends Record<string, Node<unknown>>>(props: P, o: Described = {}): Node<OneKeyOf<P>> {
  return node({
    type: 'object', ...o, minProperties: 1, maxProperties: 1,
    properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, v.schema])),
  })
}
