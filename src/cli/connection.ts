import { isPeerwireError } from "../errors.js";
import type { Connection } from "../peer/index.js";
import type { Cli } from "./context.js";

/**
 * A connection a command holds: closed gracefully before the process exits (the peer learns at once), and its
 * close reason kept. When the connection dies (consent expired, SCTP failure), its streams fail with
 * ERR_STREAM_CLOSED; `explain` shows the cause instead of that symptom.
 */
export class HeldConnection {
  readonly connection: Connection;
  #closeError: Error | undefined;

  constructor(cli: Cli, connection: Connection) {
    this.connection = connection;
    const release = cli.lifecycle.defer(() => connection.close());
    connection.once("close", (error) => {
      this.#closeError = error;
      release();
    });
  }

  /** The error to show for a failure on this connection. */
  explain(error: unknown): unknown {
    const cause = this.#closeError;
    if (cause === undefined || isPeerwireError(cause, "ERR_CONNECTION_CLOSED") || isPeerwireError(error, "ERR_ABORTED")) return error;
    return cause;
  }

  /** Runs `work`; a failure is explained. The connection closes with the process (Lifecycle.closeAll, bounded). */
  async run<T>(work: (connection: Connection) => Promise<T>): Promise<T> {
    try {
      return await work(this.connection);
    } catch (error) {
      throw this.explain(error);
    }
  }
}

/** "connected X (verified) — gather …" on stderr: what was proven, and how long each phase took. */
export function announce(cli: Cli, connection: Connection): void {
  const t = connection.timings;
  const pair = connection.stats().selectedPair;
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  cli.log(
    `peerwire: connected ${connection.remotePeerId} (verified) — gather ${ms(t.gatherMs)}, signaling ${ms(t.exchangeMs)}, ` +
      `ICE ${ms(t.iceMs)}, DTLS ${ms(t.dtlsMs)}, verify ${ms(t.verifyMs)}, SCTP ${ms(t.sctpMs)}, total ${ms(t.totalMs)}; ` +
      `pair ${pair.local} ${pair.localType} ⇄ ${pair.remote} ${pair.remoteType}`,
  );
}

/** "ERR_X: message" for a log line about someone else's failure (a refused peer, a closed connection). */
export function describeError(error: unknown): string {
  return isPeerwireError(error) ? `${error.message} (${error.code})` : error instanceof Error ? error.message : String(error);
}
