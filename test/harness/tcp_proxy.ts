/**
 * A TCP proxy on 127.0.0.1 in front of the manager, so that a test can cut a worker's stream
 * the way a network does: both sides see their connection end, and neither process is
 * touched.
 */
export class TcpProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<
    { client: Deno.TcpConn; server: Deno.TcpConn; done: Promise<void>; silent: boolean }
  >();
  readonly #accepting: Promise<void>;

  constructor(readonly targetPort: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** How many connections it carries now. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Ends every connection it carries; new ones are accepted as before. */
  async cutAll(): Promise<number> {
    const pairs = [...this.#pairs];
    for (const pair of pairs) closeQuietly(pair.client, pair.server);
    await Promise.all(pairs.map((p) => p.done));
    return pairs.length;
  }

  /**
   * Drops whatever the connections it carries now send, both ways, and keeps them open: a
   * network path gone quiet, which neither end hears about. New connections are carried.
   */
  silenceAll(): number {
    for (const pair of this.#pairs) pair.silent = true;
    return this.#pairs.size;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    await this.cutAll();
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        let server: Deno.TcpConn;
        try {
          server = await Deno.connect({ hostname: "127.0.0.1", port: this.targetPort });
        } catch {
          client.close();
          continue;
        }
        const pair = { client, server, done: Promise.resolve(), silent: false };
        const carry = () =>
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, out) {
              if (!pair.silent) out.enqueue(chunk);
            },
          });
        pair.done = Promise.all([
          client.readable.pipeThrough(carry()).pipeTo(server.writable).catch(() => {}),
          server.readable.pipeThrough(carry()).pipeTo(client.writable).catch(() => {}),
        ]).then(() => {
          closeQuietly(client, server);
          this.#pairs.delete(pair);
        });
        this.#pairs.add(pair);
      }
    } catch {
      // The listener was closed.
    }
  }
}

function closeQuietly(...conns: Deno.TcpConn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // Already closed by its pipe.
    }
  }
}
