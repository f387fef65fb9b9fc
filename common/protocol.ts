// The protocols the driver serves, as types: every service, method, request and response comes
// from what @grpc/proto-loader's generator writes into proto/gen (scripts/gen-proto-types.sh,
// with the loader options of grpc.ts). Handlers keyed by these names make a misspelt method or
// a wrong field a compile error, where a string-keyed map answered UNIMPLEMENTED at run time.
// Types only: nothing from proto/gen is loaded at run time.
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ProtoGrpcType as CsiProto } from '../proto/gen/csi.js'
import type { ProtoGrpcType as RegistrationProto } from '../proto/gen/pluginregistration.js'

type Csi = CsiProto['csi']['v1']

/** Each served service's definition, by the name implement() logs and labels it with. */
export interface Definitions {
  Identity: Csi['Identity']['service']
  Controller: Csi['Controller']['service']
  Node: Csi['Node']['service']
  GroupController: Csi['GroupController']['service']
  Registration: RegistrationProto['pluginregistration']['Registration']['service']
}
export type ServiceName = keyof Definitions

// A generated definition extends grpc.ServiceDefinition, whose string index would make any name
// a method; only the declared keys are.
type Declared<T> = keyof { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] }

export type MethodName<S extends ServiceName> = Declared<Definitions[S]> & string

/**
 * The request as a handler receives it: the generator's `__Output` type, which under the loader
 * options has every scalar, map and repeated field filled in (64-bit integers as strings, enums
 * by name), message fields as an object or null, and oneof members optional beside their
 * discriminator.
 */
export type RequestOf<S extends ServiceName, M extends MethodName<S>> =
  Definitions[S][M] extends MethodDefinition<any, any, infer Received, any> ? Received : never

/** The response a handler returns: the generator's permissive input type (all fields optional). */
export type ResponseOf<S extends ServiceName, M extends MethodName<S>> =
  Definitions[S][M] extends MethodDefinition<any, infer Sent, any, any> ? Sent : never

/** The request a client sends: the generator's permissive input type (all fields optional). */
export type ClientRequestOf<S extends ServiceName, M extends MethodName<S>> =
  Definitions[S][M] extends MethodDefinition<infer Sent, any, any, any> ? Sent : never

/** The response as a client receives it: the generator's `__Output` type, filled in as RequestOf is. */
export type ClientResponseOf<S extends ServiceName, M extends MethodName<S>> =
  Definitions[S][M] extends MethodDefinition<any, any, any, infer Received> ? Received : never

/**
 * `signal` is aborted when the caller stops waiting: it cancelled the call, or the call's
 * deadline passed. Handlers that do long work (mkfs, copies) pass it on; others ignore it.
 */
export type HandlerOf<S extends ServiceName, M extends MethodName<S>> =
  (request: RequestOf<S, M>, signal?: AbortSignal) => Promise<ResponseOf<S, M>>

/** Some of a service's handlers, keyed by method: what implement() serves (the rest: UNIMPLEMENTED). */
export type Handlers<S extends ServiceName> = { [M in MethodName<S>]?: HandlerOf<S, M> }

/** Exactly the handlers of methods M: what each file of a service returns for the server to merge. */
export type Implemented<S extends ServiceName, M extends MethodName<S>> = { [K in M]: HandlerOf<S, K> }
