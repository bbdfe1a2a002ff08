/**
 * The doctor's decisions, without a network: RFC 4787 mapping and filtering from RFC 5780 observations, the
 * path expectation, and which interface addresses count as IPv6 connectivity.
 */
import assert from "node:assert/strict";
import type { NetworkInterfaceInfo } from "node:os";
import { describe, test } from "node:test";
import { classifyFiltering, classifyMapping, expectPath, globalIpv6Addresses, noNat, type NatObservations } from "../../src/doctor/index.js";

const at = (address: string, port: number) => ({ address, port });
const MAPPED = at("203.0.113.11", 40000);

describe("mapping behaviour (RFC 4787 §4.1, tests of RFC 5780 §4.3)", () => {
  const cases: Array<[string, NatObservations, string]> = [
    ["no answer at all", {}, "unknown"],
    ["no NAT: mapped address is the socket's own", { local: at("10.0.0.2", 5000), primary: at("10.0.0.2", 5000) }, "endpoint-independent"],
    ["same mapping towards the other address", { primary: MAPPED, otherAddress: MAPPED }, "endpoint-independent"],
    ["new mapping per address, same per port", { primary: MAPPED, otherAddress: at("203.0.113.11", 40001), otherBoth: at("203.0.113.11", 40001) }, "address-dependent"],
    ["new mapping per address and port (symmetric)", { primary: MAPPED, otherAddress: at("203.0.113.11", 40001), otherBoth: at("203.0.113.11", 40002) }, "address-and-port-dependent"],
    ["other address differs, test III unanswered", { primary: MAPPED, otherAddress: at("203.0.113.11", 40001) }, "unknown"],
    ["one-address server: the other port gets a new mapping", { primary: MAPPED, otherPort: at("203.0.113.11", 40001) }, "address-and-port-dependent"],
    ["one-address server: same mapping (cannot tell EIM from ADM)", { primary: MAPPED, otherPort: MAPPED }, "unknown"],
    ["server without RFC 5780", { primary: MAPPED }, "unknown"],
  ];
  for (const [name, observations, expected] of cases) {
    test(name, () => assert.equal(classifyMapping(observations), expected));
  }

  test("noNat compares address and port", () => {
    assert.equal(noNat({ local: at("10.0.0.2", 5000), primary: at("10.0.0.2", 5001) }), false);
    assert.equal(noNat({ primary: MAPPED }), false);
  });
});

describe("filtering behaviour (RFC 4787 §5, tests of RFC 5780 §4.4)", () => {
  const cases: Array<[string, NatObservations, string]> = [
    ["answer from the other address and port arrives", { answeredFromOtherBoth: true }, "endpoint-independent"],
    ["only the answer from the other port arrives", { answeredFromOtherBoth: false, answeredFromOtherPort: true }, "address-dependent"],
    ["neither arrives", { answeredFromOtherBoth: false, answeredFromOtherPort: false }, "address-and-port-dependent"],
    ["one-address server, other port filtered", { answeredFromOtherPort: false }, "address-and-port-dependent"],
    ["one-address server, other port passes (EIF or ADF)", { answeredFromOtherPort: true }, "unknown"],
    ["not run", {}, "unknown"],
  ];
  for (const [name, observations, expected] of cases) {
    test(name, () => assert.equal(classifyFiltering(observations), expected));
  }
});

describe("path expectation", () => {
  test("UDP blocked: relay", () => assert.equal(expectPath({ udp: false, mapping: "unknown", filtering: "unknown" }).expected, "relay"));
  test("endpoint-independent mapping: direct", () => {
    assert.equal(expectPath({ udp: true, mapping: "endpoint-independent", filtering: "address-and-port-dependent" }).expected, "direct");
    assert.equal(expectPath({ udp: true, mapping: "endpoint-independent", filtering: "endpoint-independent" }).expected, "direct");
  });
  test("mapping per destination: direct only with some peers", () => {
    for (const mapping of ["address-dependent", "address-and-port-dependent"] as const) {
      const path = expectPath({ udp: true, mapping, filtering: "address-and-port-dependent" });
      assert.equal(path.expected, "direct-or-relay");
      assert.match(path.reason, /TURN relay/);
    }
  });
  test("unknown mapping: unknown", () => assert.equal(expectPath({ udp: true, mapping: "unknown", filtering: "unknown" }).expected, "unknown"));
});

describe("IPv6 availability", () => {
  const entry = (address: string, internal = false): NetworkInterfaceInfo => ({
    address,
    netmask: "ffff:ffff:ffff:ffff::",
    family: "IPv6",
    mac: "00:00:00:00:00:00",
    internal,
    cidr: `${address}/64`,
    scopeid: 0,
  });

  test("only global addresses count: not loopback, link-local (fe80::/10) or unique-local (fc00::/7)", () => {
    const interfaces = {
      lo: [entry("::1", true)],
      eth0: [entry("fe80::1"), entry("fd47:31d1::1"), entry("fc00::5"), entry("2001:db8::10")],
      eth1: [{ ...entry("192.0.2.1"), family: "IPv4" as const, netmask: "255.255.255.0", cidr: "192.0.2.1/24" }],
    };
    assert.deepEqual(globalIpv6Addresses(interfaces), ["2001:db8::10"]);
    assert.deepEqual(globalIpv6Addresses({ lo: [entry("::1", true)] }), []);
  });
});
