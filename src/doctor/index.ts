/** peerwire doctor: what this host's network allows (NAT behaviour, servers, IPv6, candidates, a real connect). */
export {
  classifyFiltering,
  classifyMapping,
  expectPath,
  noNat,
  type Endpoint,
  type NatBehaviour,
  type NatObservations,
  type PathExpectation,
} from "./classify.js";
export { probeNat, reachStream, reachUdp, StunSocket, type NatProbe, type ProbeOptions, type Reachability, type StunAnswer } from "./probe.js";
export { formatDoctorReport, globalIpv6Addresses, runDoctor, type DoctorOptions, type DoctorReport, type ServerCheck } from "./report.js";
export { PeerwireError } from "../errors.js";
