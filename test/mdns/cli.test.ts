/**
 * The CLI's LAN options (src/cli/lan.ts) on a bare commander program: exactly one of --signal and --mdns, and
 * what dial()/listen() get from them (neither: the signaling server comes from the environment or config, see options.ts). No network: the checks run before any action. (`peers --lan` itself runs
 * in the LAN lab, lan.test.ts.)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Command, CommanderError } from "commander";
import { addLanOptions, addPeersCommand, mdnsOptionsOf, type LanCliOptions } from "../../src/cli/lan.js";

function program(): { run: (args: string[]) => Promise<LanCliOptions | CommanderError> } {
  return {
    run: async (args) => {
      let seen: LanCliOptions | undefined;
      const root = new Command("peerwire").exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
      addLanOptions(root.command("dial").argument("<peer-id>").option("--signal <url>")).action((_id: string, options: LanCliOptions) => {
        seen = options;
      });
      addPeersCommand(root);
      try {
        await root.parseAsync(args, { from: "user" });
      } catch (error) {
        if (error instanceof CommanderError) return error;
        throw error;
      }
      return seen!;
    },
  };
}

describe("CLI: --mdns", () => {
  test("--mdns with interfaces becomes dial()/listen()'s mdns option", async () => {
    const lan = await program().run(["dial", "X", "--mdns", "--mdns-interface", "eth0", "--mdns-interface", "10.0.0.2"]);
    assert.ok(!(lan instanceof CommanderError));
    assert.deepEqual(mdnsOptionsOf(lan), { interfaces: ["eth0", "10.0.0.2"] });
    const plain = await program().run(["dial", "X", "--mdns"]);
    assert.ok(!(plain instanceof CommanderError));
    assert.deepEqual(mdnsOptionsOf(plain), {});
  });

  test("both, --mdns-interface without --mdns, or peers without --lan: usage errors (exit code 2)", async () => {
    for (const args of [["dial", "X", "--mdns", "--signal", "ws://h"], ["dial", "X", "--signal", "ws://h", "--mdns-interface", "eth0"], ["peers"]]) {
      const result = await program().run(args);
      assert.ok(result instanceof CommanderError, args.join(" "));
      assert.equal(result.exitCode, 2, args.join(" "));
    }
  });
});
