// Reference blob CIDs from the JS IPFS importer (ipfs-unixfs-importer, the one Helia uses), with the
// settings that match Kubo's `ipfs add --cid-version=1`: raw leaves, CIDv1, sha2-256, fixed 256 KiB
// chunks, balanced layout with at most 174 links per node, a single chunk reduced to the raw leaf.
// Used by tests/system/test_ipfs_cid_interop.py; the literal vectors in tests/unit/test_blob_cids.py
// were produced with it.
//
// Usage: node unixfs_cids.mjs [--chunk BYTES] [--links N] [--blocks] SIZE...
// Prints one JSON line per size: {"size": N, "root": "bafy..."} and, with --blocks, "blocks": every
// block as [cid, block length] in post-order (children before parents, left to right; root last).
//
// Input bytes are a pure function of the offset i, so Python reproduces them exactly:
//   byte(i) = P(i mod 65536) XOR Q(floor(i / 65536))
//   P(k) = (131 k + 31 floor(k / 256)) mod 256,  Q(h) = (197 h + 53 floor(h / 256)) mod 256
import * as dagPb from "@ipld/dag-pb";
import { importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

const args = process.argv.slice(2);
let chunkSize = 262144;
let maxLinks = 174;
let withBlocks = false;
const sizes = [];
for (let k = 0; k < args.length; k++) {
  if (args[k] === "--chunk") chunkSize = Number(args[++k]);
  else if (args[k] === "--links") maxLinks = Number(args[++k]);
  else if (args[k] === "--blocks") withBlocks = true;
  else sizes.push(Number(args[k]));
}

const BASE = new Uint8Array(65536);
for (let k = 0; k < 65536; k++) BASE[k] = (131 * k + 31 * Math.floor(k / 256)) % 256;

function* content(size) {
  // 64 KiB pieces: the importer's chunker must re-cut them, as it would a file stream.
  for (let h = 0; h * 65536 < size; h++) {
    const q = (197 * h + 53 * Math.floor(h / 256)) % 256;
    const n = Math.min(65536, size - h * 65536);
    const piece = new Uint8Array(n);
    for (let k = 0; k < n; k++) piece[k] = BASE[k] ^ q;
    yield piece;
  }
}

for (const size of sizes) {
  const store = new Map();
  const blockstore = {
    put: async (cid, bytes) => {
      if (withBlocks) store.set(cid.toString(), bytes);
      return cid;
    },
  };
  let root;
  for await (const entry of importer([{ content: content(size) }], blockstore, {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks }),
  })) {
    root = entry.cid;
  }
  const out = { size, root: root.toString() };
  if (withBlocks) {
    const blocks = [];
    const visit = (cid) => {
      const bytes = store.get(cid.toString());
      if (cid.code === dagPb.code) for (const link of dagPb.decode(bytes).Links) visit(link.Hash);
      blocks.push([cid.toString(), bytes.length]);
    };
    visit(root);
    out.blocks = blocks;
  }
  console.log(JSON.stringify(out));
}
