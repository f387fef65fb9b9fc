// The cache a KubeCollection answers from: the objects list+watch reports, with the answers to
// this process's own writes and reads laid over them until the watch catches up, so a process
// reads its own writes before their watch events come.
//
// The Kubernetes API defines resourceVersion as opaque: a client may compare two for equality and
// pass one back, never ask which is newer. So nothing here orders versions; what is newer follows
// from the order in which things happen:
// - A watch sends one object's changes in the order they were made. A list is newer than every
//   change that completed before the list was asked for.
// - This process's requests on one object (run()) go one at a time, so each answer is at least as
//   new as the one before it. (Two in flight at once could come back in either order, and their
//   versions could not say which is newer.)
// - An answer is behind the watch when its version is the one the watch had for the object when
//   the request was sent, or one the watch has sent since. Otherwise the watch has yet to send
//   it: the answer is laid over the watch's object until the watch sends that very version.
// - An answer that arrives while a relist is under way cannot be placed by equality (the list
//   may be older or newer than it), so the object is read again once the list is in.
//
// Notifications compare what get() shows before and after, so a change hidden under a newer
// answer is not reported twice, and one revealed when an answer is dropped is reported once.

export interface Versioned {
  metadata: { name: string; resourceVersion?: string }
}

/** An answer laid over the watch's object: `obj` undefined is an answer that it is gone. */
interface Overlay<O> {
  obj: O | undefined
  /** The version whose watch event ends the overlay; undefined: the next DELETED event. */
  until: string | undefined
  /**
   * For an answer that the object is gone, given while the watch had yet to send the object an
   * earlier answer of ours created: that version. DELETED events before it are of an older object.
   */
  after?: string | undefined
  /** The count of answers (`answered`) when this one came, to place it against a relist. */
  at: number
  /** False when it came in while a relist was under way: the watch may never send `until`. */
  placed: boolean
}

/** What the watch had shown for one object since a request on it was sent. */
interface InFlight {
  /** The watch's version of the object when sent (or the relist's, after one); null: none. */
  current: string | null
  /** Every version the watch (or a relist) has shown since. */
  seen: Set<string>
  /** True when the watch (or a relist) has shown the object gone since. */
  gone: boolean
  /** True while an overlay of an existing object, there when sent, waits for its watch event. */
  ahead: boolean
  /** True when a relist came in while the request was out. */
  relisted: boolean
}

const rvOf = (o: Versioned | undefined): string | undefined => o?.metadata.resourceVersion

export class KubeCache<O extends Versioned> {
  /** What list+watch last said, applied in the order it was said. */
  private watched = new Map<string, O>()
  private readonly overlays = new Map<string, Overlay<O>>()
  private readonly inFlight = new Map<string, InFlight>()
  private readonly queues = new Map<string, Promise<void>>()
  private answered = 0

  constructor(
    /** Called with the id of every object whose get() changed. */
    private readonly changed: (id: string) => void,
    /** Called for an object whose answer a relist left unplaceable: read it again with run(). */
    private readonly reread: (id: string) => void,
  ) {}

  get(id: string): O | undefined {
    const over = this.overlays.get(id)
    return over ? over.obj : this.watched.get(id)
  }

  ids(): string[] {
    return [...new Set([...this.watched.keys(), ...this.overlays.keys()])].filter((id) => this.get(id) !== undefined)
  }

  /**
   * Runs one request on an object, after any this process has in flight on it, and takes its
   * answer in: the object it returns, or undefined for "it does not exist". A request that throws
   * changes nothing. `call` must not itself run() on the same id: it would wait for itself.
   */
  async run<R extends O | undefined>(id: string, call: () => Promise<R>): Promise<R> {
    const before = this.queues.get(id)
    let finish = (): void => {}
    const mine = new Promise<void>((resolve) => { finish = resolve })
    const queue = (before ?? Promise.resolve()).then(() => mine)
    this.queues.set(id, queue)
    await before
    const over = this.overlays.get(id)
    const flight: InFlight = { current: rvOf(this.watched.get(id)) ?? null, seen: new Set(), gone: false, ahead: !!(over?.obj && over.placed), relisted: false }
    this.inFlight.set(id, flight)
    try {
      const answer = await call()
      this.take(id, flight, answer)
      return answer
    } finally {
      this.inFlight.delete(id)
      if (this.queues.get(id) === queue) this.queues.delete(id)
      finish()
    }
  }

  /** One watch event. BOOKMARK and ERROR events are the caller's business. */
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: O): void {
    const id = obj.metadata.name
    const rv = rvOf(obj)
    const shown = this.get(id)
    const flight = this.inFlight.get(id)
    if (flight && rv !== undefined) flight.seen.add(rv)
    // While our answer's object is still to come, a DELETED event is of an older one.
    if (flight && type === 'DELETED' && !flight.ahead) flight.gone = true
    if (type === 'DELETED') this.watched.delete(id)
    else this.watched.set(id, obj)
    const over = this.overlays.get(id)
    if (over?.after !== undefined) {
      if (over.after === rv) over.after = undefined
    } else if (over && (over.until === undefined ? type === 'DELETED' : over.until === rv)) {
      // A DELETED event ends an overlay by its version too: an update that drops the last
      // finalizer of a deleting object is answered with the deleted object at the delete's version.
      this.overlays.delete(id)
      if (flight) flight.ahead = false
    }
    this.tell(id, shown)
  }

  /** Call right before asking for a list; pass what it returns to listed(). */
  listing(): number {
    return this.answered
  }

  /** A list's items replace what the watch said; the watch then resumes from the list. */
  listed(asked: number, items: O[]): void {
    const fresh = new Map(items.map((o) => [o.metadata.name, o]))
    const ids = new Set([...this.watched.keys(), ...fresh.keys(), ...this.overlays.keys()])
    const shown = new Map([...ids].map((id) => [id, this.get(id)]))
    this.watched = fresh
    for (const [id, flight] of this.inFlight) {
      const rv = rvOf(fresh.get(id))
      Object.assign(flight, { current: rv ?? null, gone: flight.gone || rv === undefined, ahead: false, relisted: true })
      if (rv !== undefined) flight.seen.add(rv)
    }
    for (const [id, over] of this.overlays) {
      const item = fresh.get(id)
      // Answered before the list was asked for: the list is newer.
      if (over.at <= asked) this.overlays.delete(id)
      // The list holds that very answer, so the watch from it will not send it again.
      else if (over.until === undefined ? !item : rvOf(item) === over.until) this.overlays.delete(id)
      else {
        // Answered while the list was under way: it may be older or newer than the list.
        over.placed = false
        this.reread(id)
      }
    }
    for (const [id, was] of shown) this.tell(id, was)
  }

  private take(id: string, flight: InFlight, answer: O | undefined): void {
    const shown = this.get(id)
    this.answered++
    const rv = rvOf(answer)
    // An answer that the object is gone has no version to wait for. It is behind the watch when
    // the watch has shown the object gone since the request was sent, or had no object and no
    // overlay waiting for one. Known limit: a create and delete by others while the request is
    // out can still show that short-lived object for a moment afterwards; equality cannot tell.
    const behind = answer
      ? rv === undefined || rv === flight.current || flight.seen.has(rv)
      : flight.gone || (flight.current === null && !flight.ahead)
    if (behind) {
      // The watch has this answer or a newer one; any older overlay was ended on the way there.
      this.overlays.delete(id)
    } else {
      const after = !answer && flight.ahead ? this.overlays.get(id)?.until : undefined
      this.overlays.set(id, { obj: answer, until: rv, after, at: this.answered, placed: !flight.relisted })
      if (flight.relisted) this.reread(id)
    }
    this.tell(id, shown)
  }

  private tell(id: string, shown: O | undefined): void {
    const now = this.get(id)
    if (shown === now || (shown && now && rvOf(shown) === rvOf(now))) return
    this.changed(id)
  }
}
