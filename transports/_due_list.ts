/**
 * {@linkcode DueList}: work that connections schedule for the end of the tick, run by one microtask for
 * all of them, so that no connection keeps a closure of its own for it (an idle connection that wrote
 * once kept a 56-80 B closure and its context).
 *
 * @module
 */

/**
 * Items whose work is due at the end of this tick, in the order they were added. The first `add` of a
 * tick queues one microtask; it runs `work` for each item, and for items added while it runs.
 *
 * @example
 * ```ts
 * import { DueList } from "./_due_list.ts";
 * const flushes = new DueList<{ name: string }>((item) => console.log("flush", item.name));
 * flushes.add({ name: "a" });
 * flushes.add({ name: "b" }); // one microtask prints: flush a, flush b
 * ```
 */
export class DueList<T> {
  readonly #due: T[] = [];
  readonly #run: () => void;

  /** A list whose items each get `work(item)`; `work` is expected not to throw. */
  constructor(work: (item: T) => void) {
    const due = this.#due;
    this.#run = () => {
      let i = 0;
      try {
        for (; i < due.length; i++) work(due[i]!);
      } finally {
        // A throw (a bug: `work` catches what it calls) leaves the rest for another microtask.
        if (i + 1 < due.length) {
          due.splice(0, i + 1);
          queueMicrotask(this.#run);
        } else due.length = 0;
      }
    };
  }

  /** Runs `work(item)` at the end of this tick (once per `add`). */
  add(item: T): void {
    if (this.#due.push(item) === 1) queueMicrotask(this.#run);
  }
}
