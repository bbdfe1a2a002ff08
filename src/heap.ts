/**
 * Returns `fn`, for a closure stored on an object per connection (`obj.handler = shortLived((x) => …)`).
 *
 * V8 allocates a function literal assigned straight to a property (`obj.handler = (x) => …`, also `this.#field =`)
 * in the old generation, on the guess that it is a long-lived method. A per-connection closure made that way
 * keeps what it captures (usually the whole connection, both layers and buffers) alive through every
 * young-generation collection until the next full one: each connection's objects are copied and promoted instead
 * of dying young, which lengthens the collections that land in later connects. A literal passed through a call
 * is allocated young and dies with its connection.
 */
export function shortLived<F extends (...args: never[]) => unknown>(fn: F): F {
  return fn;
}
