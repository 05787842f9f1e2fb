/**
 * The manager's one HTTP/2 port (cleartext h2c, or TLS): Connect, gRPC and gRPC-Web on the
 * same routes, so a stock gRPC client works as well as schedctl.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ServerTls } from "../shared/tls.ts";
import { peerAddressKey } from "./worker_service.ts";
import type { DirectHandler } from "./direct_grpc.ts";

export interface ServerOptions {
  host: string;
  /** 0 picks a free port; the chosen one is in the returned address. */
  port: number;
  routes: (router: ConnectRouter) => void;
  /** Tried in turn before the routes: each serves a request itself, or leaves it to them. */
  direct?: DirectHandler[];
  /**
   * Serve over TLS (HTTP/2 only, by ALPN); with `clientCa`, a client without a certificate
   * that authority signed is refused in the handshake.
   */
  tls?: ServerTls;
}

export interface RunningServer {
  /** host:port actually listened on. */
  address: string;
  /** Stops listening and ends every connection. */
  close(): Promise<void>;
}

export function startServer(options: ServerOptions): Promise<RunningServer> {
  const handler = connectNodeAdapter({
    routes: options.routes,
    contextValues: (req) =>
      createContextValues().set(
        peerAddressKey,
        formatAddress(req.socket.remoteAddress, req.socket.remotePort),
      ),
  });
  const direct = options.direct ?? [];
  const serve = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (direct.length > 0) {
      const peer = formatAddress(req.socket.remoteAddress, req.socket.remotePort);
      for (const serve of direct) if (serve(req, res, peer)) return;
    }
    handler(req, res);
  };
  const tls = options.tls;
  const server = tls
    ? http2.createSecureServer({
      cert: tls.cert,
      key: tls.key,
      ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
      ALPNProtocols: ["h2"],
    }, serve)
    : http2.createServer(serve);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      const bound = server.address() as AddressInfo;
      resolve({
        address: formatAddress(bound.address, bound.port),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const session of sessions) session.destroy();
          }),
      });
    });
  });
}

function formatAddress(host: string | undefined, port: number | undefined): string {
  if (!host) return "";
  const bare = host.startsWith("::ffff:") ? host.slice(7) : host;
  const shown = bare.includes(":") ? `[${bare}]` : bare;
  return port === undefined ? shown : `${shown}:${port}`;
}
