// Drives a Stateless Hub with Farcaster's own client library (@farcaster/hub-nodejs):
// builds and signs messages the way Farcaster apps do (no data_bytes; ts-proto field order),
// submits them, reads them back, and checks that a tampered message is refused.
// Usage: node submit_and_read.mjs HOST:PORT FID PRIVATE_KEY_HEX   -> prints one JSON line.
import {
  CastType,
  FarcasterNetwork,
  NobleEd25519Signer,
  ReactionType,
  getInsecureHubRpcClient,
  makeCastAdd,
  makeLinkAdd,
  makeReactionAdd,
} from "@farcaster/hub-nodejs";

const [address, fidText, keyHex] = process.argv.slice(2);
const fid = Number(fidText);
const client = getInsecureHubRpcClient(address);
const signer = new NobleEd25519Signer(Buffer.from(keyHex.replace(/^0x/, ""), "hex"));
const opts = { fid, network: FarcasterNetwork.DEVNET };
const unwrap = (result, what) => {
  if (result.isErr()) {
    console.error(`${what} failed:`, result.error);
    process.exit(1);
  }
  return result.value;
};

const cast = unwrap(
  await makeCastAdd(
    {
      text: "hello from hub-nodejs",
      embeds: [{ url: "https://example.com/e" }],
      embedsDeprecated: [],
      mentions: [],
      mentionsPositions: [],
      parentUrl: "https://example.com/channel",
      type: CastType.CAST,
    },
    opts,
    signer,
  ),
  "makeCastAdd",
);
unwrap(await client.submitMessage(cast), "submit cast");
const like = unwrap(
  await makeReactionAdd({ type: ReactionType.LIKE, targetCastId: { fid, hash: cast.hash } }, opts, signer),
  "makeReactionAdd",
);
unwrap(await client.submitMessage(like), "submit reaction");
const follow = unwrap(await makeLinkAdd({ type: "follow", targetFid: fid + 1 }, opts, signer), "makeLinkAdd");
unwrap(await client.submitMessage(follow), "submit link");

const casts = unwrap(await client.getCastsByFid({ fid }), "getCastsByFid");
const byParent = unwrap(await client.getCastsByParent({ parentUrl: "https://example.com/channel" }), "byParent");
const reactions = unwrap(await client.getReactionsByCast({ targetCastId: { fid, hash: cast.hash } }), "reactions");
const links = unwrap(await client.getLinksByFid({ fid }), "links");
const info = unwrap(await client.getInfo({ dbStats: true }), "getInfo");
const tampered = await client.submitMessage({ ...cast, signature: new Uint8Array(64) });

console.log(
  JSON.stringify({
    castHash: Buffer.from(cast.hash).toString("hex"),
    castTexts: casts.messages.map((m) => m.data.castAddBody.text),
    byParent: byParent.messages.length,
    reactions: reactions.messages.length,
    links: links.messages.map((m) => m.data.linkBody.targetFid),
    infoMessages: info.dbStats ? info.dbStats.numMessages : -1,
    tamperedError: tampered.isErr() ? tampered.error.errCode : "accepted",
  }),
);
client.close();
