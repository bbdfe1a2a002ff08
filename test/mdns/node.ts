/**
 * One host's part in the LAN tests, run in a namespace by lan-lab.ts. Prints JSON lines on stdout ({ event, … }).
 *
 *   listen DIR [ALLOW]     listen({ mdns: true, allow? }), echo every stream; "stats" on stdin prints the stats
 *   dial DIR ID BYTES      dial({ mdns: true }), send BYTES random bytes on a stream, compare the echo
 *   impostor DIR ID        announce someone else's peer ID, answer with our own key (DTLS must refuse it)
 *   browse WAIT_MS [MAX]   LanBrowser.browse(): the peers that answered, and the browser's stats
 *   watch ID               resolve ID, then wait until the cache drops it (the listener's goodbye)
 *   flood COUNT            malformed and hostile mDNS packets to 224.0.0.251:5353
 *   cli ARGS…              the CLI's LAN commands (src/cli/lan.ts) on a bare commander program
 */
import { createHash, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { createInterface } from "node:readline";
import { Command } from "commander";
import multicastDns from "multicast-dns";
import { addPeersCommand } from "../../src/cli/lan.js";
import { Identity, connect, dial, isPeerwireError, listen, type Connection } from "../../src/index.js";
import { DescriptionEndpoint, LanAdvertiser, LanBrowser, chooseInterfaces } from "../../src/mdns/index.js";
import type { Stream } from "../../src/sctp/index.js";

const print = (event: string, fields: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const [mode, ...args] = process.argv.slice(2);

function echo(connection: Connection): void {
  connection.on("stream", (stream: Stream) => {
    stream.on("error", () => undefined);
    stream.pipe(stream);
  });
}

function onSignal(close: () => Promise<void>): void {
  const stop = () => void close().then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

async function main(): Promise<void> {
  switch (mode) {
    case "listen": {
      const identity = await Identity.loadOrCreate(args[0]!);
      const listener = await listen({ identity, mdns: true, ...(args[1] !== undefined ? { allow: [args[1]] } : {}) });
      listener.on("connection", (connection) => {
        print("connection", { from: connection.remotePeerId });
        echo(connection);
      });
      listener.on("failure", (error, peer) => print("failure", { peer, code: (error as { code?: string }).code, message: error.message }));
      createInterface({ input: process.stdin }).on("line", (line) => {
        if (line.trim() === "stats") print("stats", { stats: listener.stats });
      });
      onSignal(() => listener.close());
      print("listening", { peerId: listener.peerId });
      return;
    }
    case "dial": {
      const identity = await Identity.loadOrCreate(args[0]!);
      const payload = randomBytes(Number(args[2] ?? 65536));
      try {
        const started = performance.now();
        const connection = await dial({ identity, peerId: args[1]!, mdns: { resolveTimeoutMs: 3000 }, timeoutMs: 20_000 });
        const dialMs = performance.now() - started;
        const stream = await connection.openStream({ label: "lan" });
        const received: Buffer[] = [];
        stream.on("data", (message: Buffer) => received.push(message));
        const ended = new Promise<void>((resolve, reject) => {
          stream.once("end", resolve);
          stream.once("error", reject);
        });
        for (let offset = 0; offset < payload.byteLength; offset += 16_384) {
          if (!stream.write(payload.subarray(offset, offset + 16_384))) await new Promise((resolve) => stream.once("drain", resolve));
        }
        stream.end();
        await ended;
        const echoed = Buffer.concat(received);
        const pair = connection.stats().selectedPair;
        print("dialed", {
          remotePeerId: connection.remotePeerId,
          sent: createHash("sha256").update(payload).digest("hex"),
          echoed: createHash("sha256").update(echoed).digest("hex"),
          bytes: echoed.byteLength,
          pair: `${pair.local} ⇄ ${pair.remote}`,
          totalMs: connection.timings.totalMs,
          dialMs,
        });
        await connection.close();
      } catch (error) {
        print("error", { code: isPeerwireError(error) ? error.code : undefined, message: (error as Error).message });
        process.exit(1); // whatever is still open (a failed connection's timers) must not keep the test waiting
      }
      return;
    }
    case "impostor": {
      // Built from the layer's parts: the advertisement and the endpoint say "victim", the key is ours.
      const identity = await Identity.loadOrCreate(args[0]!);
      const victim = args[1]!;
      const interfaces = chooseInterfaces();
      const endpoint = await DescriptionEndpoint.listen({ peerId: victim, localAddresses: interfaces.map((i) => i.address) }, (request) => {
        connect({
          identity,
          role: "controlled",
          exchange: async (local) => {
            request.answer(local);
            return request.remote;
          },
          timeoutMs: 15_000,
        }).then(
          () => print("impostor-connected"),
          (error: unknown) => print("impostor-failed", { code: isPeerwireError(error) ? error.code : undefined, message: (error as Error).message }),
        );
      });
      const advertiser = await LanAdvertiser.start({ peerId: victim, port: endpoint.port });
      onSignal(async () => {
        await advertiser.close();
        await endpoint.close();
      });
      print("listening", { peerId: victim, as: identity.peerId });
      return;
    }
    case "browse": {
      const browser = await LanBrowser.open(args[1] !== undefined ? { maxEntries: Number(args[1]) } : {});
      print("ready");
      const peers = await browser.browse(Number(args[0] ?? 2000));
      print("peers", { peers, stats: browser.stats });
      await browser.close();
      return;
    }
    case "watch": {
      const browser = await LanBrowser.open();
      const peerId = args[0]!;
      const found = await browser.resolve(peerId, { timeoutMs: 5000 });
      print("found", { peer: found });
      const deadline = Date.now() + 15_000;
      while (browser.peers().some((peer) => peer.peerId === peerId) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      print(browser.peers().some((peer) => peer.peerId === peerId) ? "still-there" : "gone", { stats: browser.stats });
      await browser.close();
      return;
    }
    case "cli": {
      const program = new Command("peerwire").exitOverride();
      addPeersCommand(program);
      await program.parseAsync(args, { from: "user" });
      return;
    }
    case "flood": {
      print("flooded", await flood(Number(args[0] ?? 100)));
      return;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

/**
 * Malformed and hostile mDNS on the LAN: garbage, truncated headers, forward name pointers, packets with too many
 * records, peerwire records that contradict themselves, and `count` well-formed announcements of random IDs
 * (the browser's cache must stay within its bound).
 */
async function flood(count: number): Promise<Record<string, number>> {
  const raw = createSocket({ type: "udp4" });
  await new Promise<void>((resolve) => raw.bind(0, resolve));
  raw.setMulticastInterface(chooseInterfaces()[0]!.address);
  const sendRaw = (bytes: Buffer) => new Promise<void>((resolve) => raw.send(bytes, 5353, "224.0.0.251", () => resolve()));
  const sent = { garbage: 0, hostileRecords: 0, announcements: 0 };
  const header = (qd: number, an: number) => Buffer.from([0, 0, 0x84, 0, 0, qd, 0, an, 0, 0, 0, 0]);
  const crafted = [
    Buffer.from([1, 2, 3]), // shorter than a header
    header(1, 0), // a question promised, none present
    Buffer.concat([header(1, 0), Buffer.from([0xc0, 0x20, 0, 1, 0, 1])]), // a name pointer forward
    Buffer.concat([header(1, 0), Buffer.from([63]), Buffer.alloc(10, 0x41)]), // a label past the end
    Buffer.concat([header(0, 1), Buffer.from([0, 0, 1, 0, 1, 0, 0, 0, 10, 0xff, 0xff])]), // rdata past the end
  ];
  for (let round = 0; round < 4; round++) {
    for (const bytes of [...crafted, randomBytes(200), randomBytes(1400)]) {
      await sendRaw(bytes);
      sent.garbage++;
    }
  }
  const mdns = multicastDns({ interface: chooseInterfaces()[0]!.address, bind: false, multicast: false, port: 0 });
  const respond = (answers: Parameters<typeof mdns.respond>[0]) => new Promise<void>((resolve) => mdns.respond(answers, { port: 5353, address: "224.0.0.251" }, () => resolve()));
  const randomId = () => createHash("sha256").update(randomBytes(16)).digest("base64").replace(/[^A-Z]/g, "").padEnd(26, "A").slice(0, 26);
  const instance = (id: string) => `${id}._peerwire._tcp.local`;
  // Contradictions: TXT id of another peer; no TXT; SRV port 0; an address off the link; a label that is no peer ID.
  const liar = randomId();
  await respond([
    { name: instance(liar), type: "SRV", ttl: 120, data: { port: 4000, target: `${liar}.local` } },
    { name: instance(liar), type: "TXT", ttl: 120, data: ["v=1", `id=${randomId()}`] },
    { name: `${liar}.local`, type: "A", ttl: 120, data: "10.77.0.200" },
  ]);
  const partial = randomId();
  await respond([{ name: instance(partial), type: "SRV", ttl: 120, data: { port: 4000, target: `${partial}.local` } }]);
  const zero = randomId();
  await respond([
    { name: instance(zero), type: "SRV", ttl: 120, data: { port: 0, target: `${zero}.local` } },
    { name: instance(zero), type: "TXT", ttl: 120, data: ["v=1", `id=${zero}`] },
  ]);
  const offLink = randomId();
  await respond([
    { name: instance(offLink), type: "SRV", ttl: 120, data: { port: 4000, target: `${offLink}.local` } },
    { name: instance(offLink), type: "TXT", ttl: 120, data: ["v=1", `id=${offLink}`] },
    { name: `${offLink}.local`, type: "A", ttl: 120, data: "192.0.2.7" },
  ]);
  await respond([{ name: instance("not-a-peer-id"), type: "SRV", ttl: 120, data: { port: 4000, target: "x.local" } }, { name: instance("not-a-peer-id"), type: "TXT", ttl: 120, data: ["v=1"] }]);
  await respond(Array.from({ length: 70 }, (_, i) => ({ name: `n${i}.local`, type: "A" as const, ttl: 120, data: "10.77.0.99" })));
  sent.hostileRecords = 6;
  for (let i = 0; i < count; i++) {
    const id = randomId();
    await respond([
      { name: instance(id), type: "SRV", ttl: 4_000_000, data: { port: 4000 + (i % 1000), target: `${id}.local` } },
      { name: instance(id), type: "TXT", ttl: 4_000_000, data: ["v=1", `id=${id}`] },
      { name: `${id}.local`, type: "A", ttl: 4_000_000, data: "10.77.0.99" },
    ]);
    sent.announcements++;
  }
  raw.close();
  await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
  return sent;
}

await main().catch((error: unknown) => {
  print("error", { code: isPeerwireError(error) ? error.code : undefined, message: (error as Error).message });
  process.exitCode = 1;
});
