/**
 * A small HTTP/2 client for gRPC: unary requests (the calls to etcd; one connection, many
 * requests at once, answers with their headers, body and trailers) and long-lived calls whose
 * messages go both ways (the worker's stream to the manager, worker/manager_stream.ts).
 *
 * Why not Deno's fetch: it turns Nagle's algorithm on for its connections. etcd's gRPC server
 * (grpc-go) answers a request's DATA with a bandwidth-probing PING; the client's PING ACK is
 * then small data in flight that etcd acknowledges only with its delayed ACK, and Nagle holds
 * the next request until then: 40 ms stalls on 2-8% of calls, measured. Why not node:http2:
 * under Deno 2.9 its nghttp2 can abort the whole process on a GOAWAY (denoland/deno#36788).
 * So this speaks HTTP/2 over a plain Deno socket with TCP_NODELAY set.
 *
 * It grants the server flow-control windows large enough that answers never wait for it (and
 * tops them up), and obeys the server's windows when sending (a transaction may be up to a
 * megabyte; a worker's log output may be more).
 */
import hpack from "hpack.js";
import type { ClientTls } from "./tls.ts";

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;

const CANCEL = 0x8;
/** A request given up after this long with nothing heard meanwhile gives up its connection. */
const SILENT_MS = 500;
/** The longest a PING's ACK waits for a request to go with (see #deferPingAck). */
const PING_ACK_DELAY_MS = 10;
const MAX_WINDOW = 2 ** 31 - 1;
/** A call's send() waits while more than this is queued for the socket. */
const OUT_HIGH_WATER = 256 * 1024;
const DEFAULT_WINDOW = 65_535;
const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** The connection broke or was closed before the answer: the request's fate is unknown. */
export class H2ConnectionError extends Error {
  override name = "H2ConnectionError";
}

/** The server refused the request (RST_STREAM), or went away before taking it (GOAWAY). */
export class H2StreamError extends Error {
  override name = "H2StreamError";
  constructor(message: string, readonly code: number, readonly unprocessed: boolean) {
    super(message);
  }
}

export interface H2Answer {
  status: number;
  headers: Map<string, string>;
  /** Empty when the status came with the headers ("trailers only"). */
  trailers: Map<string, string>;
  body: Uint8Array;
}

/** A request whose body goes out message by message while its answer comes in (gRPC bidi). */
export interface H2Call {
  /** The answer's headers and trailers once the server ends its side; its body is empty. */
  readonly answer: Promise<H2Answer>;
  /**
   * Queues `data` after what was sent before. Resolves once the connection takes more: while
   * the server's flow control or the socket is behind, it waits.
   */
  send(data: Uint8Array, options?: { lazy?: boolean }): Promise<void>;
  /** Ends our side once what was sent before has gone. */
  end(): void;
}

interface Stream {
  id: number;
  resolve: (answer: H2Answer) => void;
  reject: (error: Error) => void;
  headers?: Map<string, string>;
  trailers: Map<string, string>;
  chunks: Uint8Array[];
  /** A call's answer body goes here as it arrives, instead of into `chunks`. */
  onData?: (data: Uint8Array) => void;
  /** What the server lets this stream send. */
  sendWindow: number;
  /** Received since this stream's window was last topped up. */
  received: number;
  /** The body's frames being sent, in order. */
  sending: Promise<void>;
  done: boolean;
}

type Decompressor = {
  write(data: Uint8Array): void;
  execute(): void;
  read(): { name: string; value: string } | null;
};

export interface H2Options {
  /**
   * For an https:// origin: a certificate authority to trust besides the system's, and this
   * client's certificate and key for a server that asks for one (PEM texts).
   */
  tls?: ClientTls;
  /**
   * How long a call's message sent with `lazy` may wait for company: the next frame that
   * is not lazy takes it along, or it goes when this time is up. Frames queued in one turn
   * of the event loop go out in one write in any case.
   */
  coalesceMs?: number;
}

/** One HTTP/2 connection to `origin` (`http://host:port`, or `https://` over TLS with ALPN). */
export class H2Connection {
  readonly #conn: Deno.Conn;
  readonly #authority: string;
  readonly #scheme: string;
  readonly #streams = new Map<number, Stream>();
  readonly #decoder: Decompressor = hpack.decompressor.create({ table: { maxSize: 4096 } });
  #nextId = 1;
  #closed?: Error;
  /** No new requests once the server said GOAWAY or the connection failed. */
  #draining = false;
  #peerMaxFrame = 16_384;
  #peerInitialWindow = DEFAULT_WINDOW;
  #connSendWindow = DEFAULT_WINDOW;
  #received = 0;
  /** When the server was last heard from (performance.now()). */
  #heardAt = performance.now();
  #windowWaiters: (() => void)[] = [];
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #flushing?: Promise<void>;
  readonly #coalesceMs: number;
  #writes = 0;
  /** Whether a frame waiting in #out must go without waiting for company. */
  #eagerWaiting = false;
  /** The timer of a flush held for lazy frames, and what starts that flush at once. */
  #hold?: { timer: ReturnType<typeof setTimeout>; release: () => void };
  /** Payloads of the server's PINGs not acknowledged yet (see #deferPingAck). */
  #pingAcks: Uint8Array[] = [];
  #pingAckTimer?: ReturnType<typeof setTimeout>;
  /** A header block in CONTINUATION frames, for this stream id. */
  #block?: { id: number; parts: Uint8Array[]; endStream: boolean };

  private constructor(conn: Deno.Conn, origin: URL, options: H2Options) {
    this.#conn = conn;
    this.#coalesceMs = options.coalesceMs ?? 0;
    this.#authority = origin.host;
    this.#scheme = origin.protocol.slice(0, -1);
  }

  static async open(
    origin: URL,
    signal: AbortSignal,
    options: H2Options = {},
  ): Promise<H2Connection> {
    const hostname = origin.hostname.replace(/^\[|\]$/g, "");
    const port = Number(origin.port || (origin.protocol === "https:" ? 443 : 80));
    let conn: Deno.Conn;
    if (origin.protocol === "https:") {
      // connectTls, not startTls on a TCP connection: only it presents a client certificate.
      const tls = options.tls;
      conn = await untilAborted(
        Deno.connectTls({
          hostname,
          port,
          alpnProtocols: ["h2"],
          ...(tls?.ca ? { caCerts: [tls.ca] } : {}),
          ...(tls?.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
        }),
        signal,
      );
    } else {
      const tcp = await Deno.connect({ hostname, port, signal });
      tcp.setNoDelay(true);
      conn = tcp;
    }
    const h2 = new H2Connection(conn, origin, options);
    h2.#start();
    return h2;
  }

  /** Whether new requests may go on this connection. */
  get usable(): boolean {
    return !this.#draining && this.#nextId < 2 ** 31 - 2;
  }

  /** Whether a PING's ACK waits to go out (see #deferPingAck). */
  get holdsPingAck(): boolean {
    return this.#pingAcks.length > 0;
  }

  /** Sends a request with `body` and resolves with the whole answer. */
  request(
    path: string,
    headers: [string, string][],
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<H2Answer> {
    const { stream, answer } = this.#open(path, headers, body.length === 0, undefined, signal);
    if (stream && body.length > 0) stream.sending = this.#sendBody(stream, body, true);
    return answer;
  }

  /**
   * Opens a request whose body is sent with `send` and whose answer's body is handed to
   * `onData` as it arrives: one long-lived stream each way (a gRPC bidi call).
   */
  call(
    path: string,
    headers: [string, string][],
    onData: (data: Uint8Array) => void,
    signal: AbortSignal,
  ): H2Call {
    const { stream, answer } = this.#open(path, headers, false, onData, signal);
    return {
      answer,
      send: async (data, options) => {
        if (!stream) return;
        const lazy = options?.lazy ?? false;
        stream.sending = stream.sending.then(() => this.#sendBody(stream, data, false, lazy));
        await stream.sending;
        while (this.#outBytes > OUT_HIGH_WATER && this.#flushing && !this.#closed) {
          await this.#flushing;
        }
      },
      end: () => {
        if (!stream) return;
        stream.sending = stream.sending.then(() => {
          if (!stream.done) this.#frame(DATA, END_STREAM, stream.id, new Uint8Array(0));
        });
      },
    };
  }

  #open(
    path: string,
    headers: [string, string][],
    endStream: boolean,
    onData: ((data: Uint8Array) => void) | undefined,
    signal: AbortSignal,
  ): { stream?: Stream; answer: Promise<H2Answer> } {
    if (this.#closed) return { answer: Promise.reject(this.#closed) };
    if (signal.aborted) {
      return { answer: Promise.reject(new H2StreamError("cancelled", CANCEL, true)) };
    }
    if (!this.usable) {
      return {
        answer: Promise.reject(new H2StreamError("the connection is going away", 0, true)),
      };
    }
    const id = this.#nextId;
    this.#nextId += 2;
    let stream!: Stream;
    const answer = new Promise<H2Answer>((resolve, reject) => {
      stream = {
        id,
        resolve,
        reject,
        trailers: new Map(),
        chunks: [],
        onData,
        sendWindow: this.#peerInitialWindow,
        received: 0,
        sending: Promise.resolve(),
        done: false,
      };
      this.#streams.set(id, stream);
      const sentAt = performance.now();
      const onAbort = () => {
        if (stream.done) return;
        this.#end(stream);
        this.#frame(RST_STREAM, 0, id, u32(CANCEL));
        reject(new H2StreamError("cancelled", CANCEL, false));
        if (this.#heardAt < sentAt && performance.now() - sentAt >= SILENT_MS) {
          // Not a frame since the request went out, a while ago: the path may be dead without
          // either end being told (TCP would take many minutes to say so). Later requests get
          // a new connection instead of waiting on this one. (A request cancelled at once
          // says nothing about the path.)
          this.#fail(new H2ConnectionError("the server went silent"));
        }
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const settled = () => signal.removeEventListener("abort", onAbort);
      stream.resolve = (answer) => {
        settled();
        resolve(answer);
      };
      stream.reject = (error) => {
        settled();
        reject(error);
      };
      const block = encodeHeaders([
        [":method", "POST"],
        [":scheme", this.#scheme],
        [":authority", this.#authority],
        [":path", path],
        ...headers,
      ]);
      this.#frame(HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), id, block);
    });
    return { stream, answer };
  }

  /** Ends the connection; unanswered requests fail. */
  close(): void {
    this.#fail(new H2ConnectionError("the connection was closed"));
  }

  #start(): void {
    const settings = new Uint8Array(18);
    const view = new DataView(settings.buffer);
    view.setUint16(0, SETTINGS_ENABLE_PUSH);
    view.setUint32(2, 0);
    view.setUint16(6, SETTINGS_INITIAL_WINDOW_SIZE);
    view.setUint32(8, MAX_WINDOW);
    view.setUint16(12, SETTINGS_HEADER_TABLE_SIZE);
    view.setUint32(14, 4096);
    this.#out.push(PREFACE);
    this.#frame(SETTINGS, 0, 0, settings);
    // The connection's window too, so that answers never wait for a WINDOW_UPDATE.
    this.#frame(WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW - DEFAULT_WINDOW));
    void this.#readLoop();
  }

  async #sendBody(
    stream: Stream,
    body: Uint8Array,
    endStream: boolean,
    lazy = false,
  ): Promise<void> {
    let at = 0;
    while (at < body.length) {
      if (stream.done) return;
      const room = Math.min(stream.sendWindow, this.#connSendWindow, this.#peerMaxFrame);
      if (room <= 0) {
        await new Promise<void>((wake) => this.#windowWaiters.push(wake));
        if (this.#closed) return;
        continue;
      }
      const n = Math.min(room, body.length - at);
      stream.sendWindow -= n;
      this.#connSendWindow -= n;
      const last = endStream && at + n === body.length;
      this.#frame(DATA, last ? END_STREAM : 0, stream.id, body.subarray(at, at + n), lazy);
      at += n;
    }
  }

  /**
   * etcd (grpc-go) sends a bandwidth-probing PING after nearly every request it reads, so
   * acknowledging each at once was half of the writes to etcd, and half of the packets etcd
   * had to wake up and read: a cost per write on both ends, not per byte. The ACK now goes
   * with the next frame (usually the next request), or on its own after PING_ACK_DELAY_MS.
   * Nothing waits on it: our receive windows are granted in full up front, and etcd's
   * keepalive waits seconds for an ACK.
   */
  #deferPingAck(payload: Uint8Array): void {
    this.#pingAcks.push(payload);
    this.#pingAckTimer ??= setTimeout(() => {
      this.#pingAckTimer = undefined;
      this.#sendPingAcks();
    }, PING_ACK_DELAY_MS);
  }

  #sendPingAcks(): void {
    clearTimeout(this.#pingAckTimer);
    this.#pingAckTimer = undefined;
    const acks = this.#pingAcks;
    this.#pingAcks = [];
    for (const payload of acks) this.#frame(PING, ACK, 0, payload);
  }

  /** Queues a frame; frames queued together go out in one write. */
  #frame(type: number, flags: number, id: number, payload: Uint8Array, lazy = false): void {
    if (this.#closed) return;
    // PING ACKs first, as HTTP/2 asks.
    if (type !== PING && this.#pingAcks.length > 0) this.#sendPingAcks();
    const header = new Uint8Array(9);
    const view = new DataView(header.buffer);
    view.setUint32(0, payload.length << 8);
    header[3] = type;
    header[4] = flags;
    view.setUint32(5, id & 0x7fffffff);
    this.#out.push(header, payload);
    this.#outBytes += 9 + payload.length;
    if (!lazy) this.#eagerWaiting = true;
    this.#scheduleFlush();
  }

  /** Number of writes to the connection so far (each may carry many frames). */
  get writes(): number {
    return this.#writes;
  }

  #scheduleFlush(): void {
    if (this.#hold && this.#eagerWaiting) this.#releaseHold();
    if (this.#flushing) return;
    if (this.#eagerWaiting || this.#coalesceMs <= 0) {
      this.#flushing = Promise.resolve().then(() => this.#flush());
      return;
    }
    this.#flushing = new Promise<void>((release) => {
      this.#hold = { timer: setTimeout(release, this.#coalesceMs), release };
    }).then(() => this.#flush());
  }

  /** The held flush starts now (it goes after the current turn's frames, as any flush). */
  #releaseHold(): void {
    if (!this.#hold) return;
    clearTimeout(this.#hold.timer);
    this.#hold.release();
    this.#hold = undefined;
  }

  async #flush(): Promise<void> {
    try {
      // One write; what is queued meanwhile is scheduled again, lazy frames held as ever.
      if (this.#out.length > 0 && !this.#closed) {
        const chunks = this.#out;
        this.#out = [];
        this.#eagerWaiting = false;
        this.#hold = undefined;
        const data = concat(chunks);
        this.#writes++;
        for (let at = 0; at < data.length;) at += await this.#conn.write(data.subarray(at));
        this.#outBytes -= data.length;
      }
    } catch (e) {
      this.#fail(
        new H2ConnectionError(`writing to the connection failed: ${(e as Error).message}`),
      );
    } finally {
      this.#flushing = undefined;
      if (this.#out.length > 0 && !this.#closed) this.#scheduleFlush();
    }
  }

  async #readLoop(): Promise<void> {
    let buffer = new Uint8Array(64 * 1024);
    let start = 0;
    let end = 0;
    try {
      for (;;) {
        if (end === buffer.length) {
          // Keep the unread part; grow when one frame is larger than the buffer.
          const unread = end - start;
          const bigger = new Uint8Array(
            unread * 2 > buffer.length ? buffer.length * 2 : buffer.length,
          );
          bigger.set(buffer.subarray(start, end));
          buffer = bigger;
          start = 0;
          end = unread;
        }
        const n = await this.#conn.read(buffer.subarray(end));
        if (n === null) throw new H2ConnectionError("the server closed the connection");
        this.#heardAt = performance.now();
        end += n;
        while (end - start >= 9) {
          const length = (buffer[start] << 16) | (buffer[start + 1] << 8) | buffer[start + 2];
          if (end - start < 9 + length) break;
          const type = buffer[start + 3];
          const flags = buffer[start + 4];
          const id = new DataView(buffer.buffer, start + 5, 4).getUint32(0) & 0x7fffffff;
          // A copy: the buffer is reused for the next read.
          const payload = buffer.slice(start + 9, start + 9 + length);
          start += 9 + length;
          this.#onFrame(type, flags, id, payload);
        }
        if (start === end) start = end = 0;
      }
    } catch (e) {
      this.#fail(
        e instanceof H2ConnectionError
          ? e
          : new H2ConnectionError(`the connection failed: ${(e as Error).message}`),
      );
    }
  }

  #onFrame(type: number, flags: number, id: number, payload: Uint8Array): void {
    if (this.#block && type !== CONTINUATION) {
      throw new H2ConnectionError("the server interrupted a header block");
    }
    switch (type) {
      case DATA:
        return this.#onData(flags, id, payload);
      case HEADERS: {
        let at = 0;
        let end = payload.length;
        if (flags & PADDED) {
          at = 1;
          end -= payload[0];
        }
        if (flags & PRIORITY_FLAG) at += 5;
        this.#block = { id, parts: [payload.subarray(at, end)], endStream: !!(flags & END_STREAM) };
        if (flags & END_HEADERS) this.#onHeaderBlock();
        return;
      }
      case CONTINUATION:
        if (!this.#block || this.#block.id !== id) {
          throw new H2ConnectionError("the server sent a CONTINUATION out of place");
        }
        this.#block.parts.push(payload);
        if (flags & END_HEADERS) this.#onHeaderBlock();
        return;
      case RST_STREAM: {
        const stream = this.#streams.get(id);
        if (!stream) return;
        const code = new DataView(payload.buffer).getUint32(0);
        this.#end(stream);
        // REFUSED_STREAM (7): the server did not start on it.
        stream.reject(
          new H2StreamError(`the server reset the request (code ${code})`, code, code === 7),
        );
        return;
      }
      case SETTINGS:
        if (flags & ACK) return;
        this.#onSettings(payload);
        this.#frame(SETTINGS, ACK, 0, new Uint8Array(0));
        return;
      case PING:
        if (!(flags & ACK)) this.#deferPingAck(payload);
        return;
      case GOAWAY: {
        const view = new DataView(payload.buffer);
        const last = view.getUint32(0) & 0x7fffffff;
        const code = view.getUint32(4);
        this.#draining = true;
        for (const stream of [...this.#streams.values()]) {
          if (stream.id <= last) continue;
          this.#end(stream);
          stream.reject(new H2StreamError(`the server is going away (code ${code})`, code, true));
        }
        if (this.#streams.size === 0) this.close();
        return;
      }
      case WINDOW_UPDATE: {
        const increment = new DataView(payload.buffer).getUint32(0) & 0x7fffffff;
        if (id === 0) this.#connSendWindow += increment;
        else {
          const stream = this.#streams.get(id);
          if (stream) stream.sendWindow += increment;
        }
        this.#wakeSenders();
        return;
      }
      default:
        return; // PRIORITY, PUSH_PROMISE (refused by our settings) and unknown types.
    }
  }

  #onData(flags: number, id: number, payload: Uint8Array): void {
    // Flow control counts the whole frame, padding included.
    this.#received += payload.length;
    if (this.#received > MAX_WINDOW / 2) {
      this.#frame(WINDOW_UPDATE, 0, 0, u32(this.#received));
      this.#received = 0;
    }
    const stream = this.#streams.get(id);
    if (!stream) return;
    // A call may go on for good: its stream's window is topped up like the connection's.
    stream.received += payload.length;
    if (stream.received > MAX_WINDOW / 2 && !(flags & END_STREAM)) {
      this.#frame(WINDOW_UPDATE, 0, id, u32(stream.received));
      stream.received = 0;
    }
    const data = flags & PADDED ? payload.subarray(1, payload.length - payload[0]) : payload;
    if (data.length > 0) {
      if (stream.onData) stream.onData(data);
      else stream.chunks.push(data);
    }
    if (flags & END_STREAM) this.#finish(stream);
  }

  #onHeaderBlock(): void {
    const block = this.#block!;
    this.#block = undefined;
    // Every block goes through the decoder, whoever it was for: they share its table.
    for (const part of block.parts) this.#decoder.write(part);
    this.#decoder.execute();
    const fields = new Map<string, string>();
    for (let field = this.#decoder.read(); field; field = this.#decoder.read()) {
      fields.set(field.name, field.value);
    }
    const stream = this.#streams.get(block.id);
    if (!stream) return;
    if (!stream.headers) stream.headers = fields;
    else stream.trailers = fields;
    if (block.endStream) this.#finish(stream);
  }

  #onSettings(payload: Uint8Array): void {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    for (let at = 0; at + 6 <= payload.length; at += 6) {
      const key = view.getUint16(at);
      const value = view.getUint32(at + 2);
      if (key === SETTINGS_INITIAL_WINDOW_SIZE) {
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const stream of this.#streams.values()) stream.sendWindow += delta;
        this.#wakeSenders();
      } else if (key === SETTINGS_MAX_FRAME_SIZE) {
        this.#peerMaxFrame = value;
      }
    }
  }

  #finish(stream: Stream): void {
    this.#end(stream);
    const headers = stream.headers ?? new Map();
    stream.resolve({
      status: Number(headers.get(":status") ?? 0),
      headers,
      trailers: stream.trailers,
      body: concat(stream.chunks),
    });
  }

  #end(stream: Stream): void {
    stream.done = true;
    this.#streams.delete(stream.id);
    if (this.#draining && this.#streams.size === 0) queueMicrotask(() => this.close());
  }

  #wakeSenders(): void {
    const waiters = this.#windowWaiters;
    this.#windowWaiters = [];
    for (const wake of waiters) wake();
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    this.#draining = true;
    clearTimeout(this.#pingAckTimer);
    this.#pingAckTimer = undefined;
    this.#pingAcks = [];
    // Its flush finds the connection closed; whoever waits on it goes on.
    this.#releaseHold();
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other end.
    }
    for (const stream of this.#streams.values()) {
      stream.done = true;
      stream.reject(error);
    }
    this.#streams.clear();
    this.#wakeSenders();
  }
}

/** The connection, or the abort's error; a connection made after the abort is closed. */
function untilAborted<C extends Deno.Conn>(
  connecting: Promise<C>,
  signal: AbortSignal,
): Promise<C> {
  signal.throwIfAborted();
  return new Promise<C>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    connecting.then((conn) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) conn.close();
      else resolve(conn);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
  });
}

/** Header fields as HPACK literals without indexing (no state to share with the server). */
function encodeHeaders(fields: [string, string][]): Uint8Array {
  const encoder = new TextEncoder();
  const parts: number[] = [];
  const string = (s: string) => {
    const bytes = encoder.encode(s);
    integer(bytes.length, 7, 0x00, parts);
    for (const b of bytes) parts.push(b);
  };
  for (const [name, value] of fields) {
    parts.push(0x00);
    string(name);
    string(value);
  }
  return new Uint8Array(parts);
}

/** An HPACK integer with an N-bit prefix. */
function integer(value: number, prefixBits: number, firstByte: number, out: number[]): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(firstByte | value);
    return;
  }
  out.push(firstByte | max);
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
