export { Connection, connect, type ConnectOptions, type ConnectTimings, type ConnectionStats } from "./connect.js";
export { exchangePair, type Exchange } from "./exchange.js";
export { Listener, dial, listen, type DialOptions, type ListenOptions, type ListenerStats, type RendezvousOptions } from "./rendezvous.js";
export { LanListener, type LanDialOptions, type LanListenOptions, type LanListenerStats, type MdnsOptions } from "./lan.js";
