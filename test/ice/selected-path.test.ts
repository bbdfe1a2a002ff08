import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, test } from "node:test";
import { StunOverTurnProtocol, StunProtocol, UdpTransport } from "werift";
import { isPeerwireError } from "../../src/errors.js";
import { SelectedPathSender } from "../../src/ice/werift.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { connectedAgents, dtlsLike, received, sendTo, udpSocket } from "./support.js";

guardNetworkForThisFile();

/** A werift-shaped Connection whose nominated pair is `pair`, for SelectedPathSender alone. */
function connectionWith(pair: unknown, canSend = () => true) {
  return { nominated: pair, canSendApplicationData: canSend } as never;
}

/** A pair as werift makes it for a host candidate: its StunProtocol over a UdpTransport, the peer's [host, port]. */
async function udpPair(remote: [string, number]) {
  const transport = await UdpTransport.init("udp4", { interfaceAddresses: { udp4: "127.0.0.1" } });
  const protocol = Object.assign(Object.create(StunProtocol.prototype) as object, { transport });
  return { pair: { protocol, remoteAddr: remote }, transport };
}

describe("sending on the selected pair", () => {
  test("a plain UDP pair sends on its own socket, to the peer's address, bytes unchanged", async () => {
    const peer = await udpSocket();
    const { pair, transport } = await udpPair(["127.0.0.1", peer.address().port]);
    const sender = new SelectedPathSender(connectionWith(pair));
    assert.equal(sender.direct, true);
    const arrived = once(peer, "message");
    assert.equal(sender.send(Buffer.from(dtlsLike(7))), true);
    const [data, from] = (await arrived) as [Buffer, { port: number }];
    assert.deepEqual(new Uint8Array(data), dtlsLike(7));
    assert.equal(from.port, transport.port, "from the pair's socket");
    peer.close();
    await transport.close();
  });

  test("a remote address that is a name stays on werift's path (its send reports a failed lookup)", async () => {
    const { pair, transport } = await udpPair(["peer.invalid", 9]);
    const sender = new SelectedPathSender(connectionWith(pair));
    assert.equal(sender.direct, false);
    assert.equal(sender.send(Buffer.from(dtlsLike(1))), false);
    await transport.close();
  });

  test("a relayed pair is left to werift (TURN framing): send() sends nothing and says so", () => {
    const protocol = Object.create(StunOverTurnProtocol.prototype) as object;
    const sender = new SelectedPathSender(connectionWith({ protocol, remoteAddr: ["127.0.0.1", 9] }));
    assert.equal(sender.direct, false);
    assert.equal(sender.send(Buffer.from(dtlsLike(1))), false);
  });

  test("nothing leaves while werift says application data may not (consent lapsed, closed)", async () => {
    const peer = await udpSocket();
    let allowed = false;
    const { pair, transport } = await udpPair(["127.0.0.1", peer.address().port]);
    const sender = new SelectedPathSender(connectionWith(pair, () => allowed));
    const got: Buffer[] = [];
    peer.on("message", (data) => got.push(data));
    assert.equal(sender.send(Buffer.from(dtlsLike(1))), true, "handled: dropped, as werift drops it");
    allowed = true;
    const arrived = once(peer, "message");
    sender.send(Buffer.from(dtlsLike(2)));
    await arrived;
    assert.deepEqual(got.map((d) => d[3]), [2]);
    peer.close();
    await transport.close();
  });

  test("a newly nominated pair is picked up at the next send", async () => {
    const first = await udpSocket();
    const second = await udpSocket();
    const a = await udpPair(["127.0.0.1", first.address().port]);
    const b = await udpPair(["127.0.0.1", second.address().port]);
    const connection = { nominated: a.pair as unknown, canSendApplicationData: () => true };
    const sender = new SelectedPathSender(connection as never);
    connection.nominated = b.pair;
    const arrived = once(second, "message");
    sender.send(Buffer.from(dtlsLike(3)));
    await arrived;
    for (const socket of [first, second]) socket.close();
    await Promise.all([a.transport.close(), b.transport.close()]);
  });

  test("at first use, a reshaped werift fails loudly with ERR_WERIFT_INCOMPATIBLE", async () => {
    const { pair, transport } = await udpPair(["127.0.0.1", 9]);
    const cases: Array<[unknown, string]> = [
      [{ nominated: pair }, "canSendApplicationData is missing"],
      [connectionWith({ protocol: pair.protocol }), "remoteAddr is missing"],
      [connectionWith({ ...pair, remoteAddr: [9, "127.0.0.1"] }), "no [host, port] remote address"],
      [connectionWith({ ...pair, protocol: Object.assign(Object.create(StunProtocol.prototype) as object, { transport: {} }) }), "not its UdpTransport"],
    ];
    for (const [connection, fragment] of cases) {
      assert.throws(
        () => new SelectedPathSender(connection as never),
        (error: unknown) => isPeerwireError(error, "ERR_WERIFT_INCOMPATIBLE") && error.message.includes(fragment),
      );
    }
    await transport.close();
  });

  test("DTLS from the selected pair goes up past werift's events; from elsewhere it still meets the guard", async () => {
    const prototype = StunProtocol.prototype as unknown as { datagramReceived: (data: Buffer, address: unknown) => void };
    const datagramReceived = prototype.datagramReceived;
    let dtlsThroughWerift = 0;
    prototype.datagramReceived = function (this: unknown, data: Buffer, address: unknown) {
      if (data[0]! >= 20 && data[0]! <= 63) dtlsThroughWerift++;
      return datagramReceived.call(this, data, address);
    };
    try {
      const { a, b, ta, tb } = await connectedAgents();
      const atB = received(tb);
      await ta.send(dtlsLike(5));
      assert.deepEqual(await atB, dtlsLike(5));
      assert.equal(dtlsThroughWerift, 0);
      const stranger = await udpSocket();
      const dropsBefore = b.stats.dropped["unknown-source"];
      const got: Uint8Array[] = [];
      tb.onDatagram((d) => got.push(d));
      await sendTo(stranger, dtlsLike(6), tb.selectedPair.local);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(got, [], "a stranger's DTLS is not delivered");
      assert.equal(b.stats.dropped["unknown-source"], dropsBefore + 1);
      stranger.close();
      await Promise.all([a.close(), b.close()]);
    } finally {
      prototype.datagramReceived = datagramReceived;
    }
  });

  test("an IceTransport on a host pair sends past werift's protocol (StunProtocol#sendData is not called)", async () => {
    const { a, b, ta, tb } = await connectedAgents();
    const prototype = StunProtocol.prototype as unknown as { sendData: (...args: unknown[]) => Promise<void> };
    const sendData = prototype.sendData;
    let viaWerift = 0;
    prototype.sendData = function (this: unknown, ...args: unknown[]) {
      viaWerift++;
      return sendData.apply(this, args);
    };
    try {
      const atB = received(tb);
      await ta.send(dtlsLike(4));
      assert.deepEqual(await atB, dtlsLike(4));
      assert.equal(viaWerift, 0);
    } finally {
      prototype.sendData = sendData;
    }
    await Promise.all([a.close(), b.close()]);
  });
});
