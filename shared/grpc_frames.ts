/**
 * gRPC's message framing, for the calls served and made without Connect (the worker stream
 * at both ends, the operator's unary calls, etcd): a flag byte (compression, which we never
 * negotiate), the message's length in 4 bytes, the message; and a call's status.
 */
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/** Worker-stream messages are small; a larger one is a broken or hostile peer. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The bytes of a message frame before the message. */
export const FRAME_HEADER = 5;

/** A call's end as gRPC says it, in its trailers or the headers of a "trailers only" answer. */
export interface GrpcStatus {
  /** The status code's text ("0" for OK); undefined when the call ended without one. */
  status?: string;
  /** Percent-decoded, as gRPC sends it; as sent when it is not percent-encoded after all. */
  message: string;
}

export function grpcStatus(
  answer: { headers: Map<string, string>; trailers: Map<string, string> },
): GrpcStatus {
  const field = (name: string) => answer.trailers.get(name) ?? answer.headers.get(name);
  const raw = field("grpc-message") ?? "";
  let message = raw;
  try {
    message = decodeURIComponent(raw);
  } catch {
    // Not percent-encoded after all: as sent.
  }
  return { status: field("grpc-status"), message };
}

/** One message, encoded and framed. */
export function grpcFrame<T extends DescMessage>(
  schema: T,
  message: MessageInitShape<T>,
): Uint8Array {
  const bytes = toBinary(schema, create(schema, message));
  const framed = new Uint8Array(FRAME_HEADER + bytes.length);
  framed.set(bytes, FRAME_HEADER);
  return frameInPlace(framed);
}

/**
 * Makes a message frame in place (not compressed, the length big-endian, the message): the
 * hand-written encoders (ProtoWriter) leave the header's bytes free before the message, so a
 * message of up to a megabyte is not copied once more to make room for five bytes.
 */
export function frameInPlace(framed: Uint8Array): Uint8Array {
  framed[0] = 0;
  new DataView(framed.buffer, framed.byteOffset, FRAME_HEADER)
    .setUint32(1, framed.length - FRAME_HEADER);
  return framed;
}

/**
 * Splits a gRPC body into its messages (a flag byte, a 4-byte length, the message), whichever
 * way the body is cut into chunks.
 */
const EMPTY = new Uint8Array(0);

export class EnvelopeReader {
  #pending: Uint8Array = EMPTY;

  /** Messages larger than `maxBytes` are refused. */
  constructor(private readonly maxBytes = MAX_MESSAGE_BYTES) {}

  /** Whether the body so far ends inside a message: at its end, a truncated body. */
  get partial(): boolean {
    return this.#pending.length > 0;
  }

  /** The messages completed by `chunk`; throws a ConnectError for one it will not take. */
  push(chunk: Uint8Array): Uint8Array[] {
    let data = chunk;
    if (this.#pending.length > 0) {
      data = new Uint8Array(this.#pending.length + chunk.length);
      data.set(this.#pending);
      data.set(chunk, this.#pending.length);
    }
    const messages: Uint8Array[] = [];
    let at = 0;
    while (data.length - at >= 5) {
      const flags = data[at];
      // Big-endian, read by hand: a DataView per message was garbage on every read.
      const length =
        ((data[at + 1] << 24) | (data[at + 2] << 16) | (data[at + 3] << 8) | data[at + 4]) >>> 0;
      if (flags & 1) {
        throw new ConnectError("compressed messages were not negotiated", Code.InvalidArgument);
      }
      if (length > this.maxBytes) {
        throw new ConnectError(
          `a message of ${length} bytes is more than the ${this.maxBytes} accepted`,
          Code.ResourceExhausted,
        );
      }
      if (data.length - at - 5 < length) break;
      messages.push(data.subarray(at + 5, at + 5 + length));
      at += 5 + length;
    }
    this.#pending = at === data.length ? EMPTY : data.slice(at);
    return messages;
  }
}
