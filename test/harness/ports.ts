/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago. Another process may take it
 * before the caller binds it, so callers that start servers should retry on "address in use".
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}
