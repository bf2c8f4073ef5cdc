"""CIDs and known-answer DAGs: our blob CIDs must be the ones IPFS tools print for the same bytes.

How the vectors were produced (once, outside the repo, ipfs-unixfs-importer 17.1.1 + @ipld/dag-pb 4.2.0 +
multiformats 14.0.5 on Node 20): `node tests/interop/unixfs_cids.mjs SIZE...` (same script as committed;
it runs the JS importer with Kubo's `ipfs add --cid-version=1` settings: raw leaves, CIDv1, sha2-256,
fixedSize(262144), balanced({maxChildrenPerNode: 174}), reduceSingleLeafToSelf) and, for the small
layouts, `--chunk 1024 --links 3`; `--blocks` lists every block in post-order. The input bytes are a
pure function of the offset (`interop_bytes` below, documented in the script).

The BLAKE3 vectors come from the same script with the importer's `dist/src/utils/persist.js` patched in
the scratch copy to hash with `@noble/hashes` blake3 wrapped as multihash 0x1e
(`from({name: "blake3", code: 0x1e, encode: (b) => blake3(b)})` instead of `sha256`), i.e. the same DAG
with every block hashed by BLAKE3, as `ipfs add --cid-version=1 --hash=blake3` would. CIDv0 and
multibase spellings were cross-checked with multiformats' `CID.parse(...).toV1()` / `toString(base)`.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.blobs import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    HASHES,
    MAX_BLOCK_BYTES,
    MAX_LINKS,
    MH_BLAKE3,
    MH_SHA2_256,
    Block,
    Cid,
    DagBuilder,
    block_cid,
    hash_bytes,
    verify_block,
)
from protocols.errors import HubError

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
EMPTY_RAW_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
# The empty UnixFS directory, the best-known CIDv0, and its v1 spelling (multiformats' toV1()).
EMPTY_DIR_V0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
EMPTY_DIR_V1 = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
EMPTY_DIR_DIGEST = "59948439065f29619ef41280cbb932be52c56d99c5966b65e0111239f098bbef"


def interop_bytes(size: int) -> bytes:
    """byte(i) = P(i mod 65536) XOR Q(i // 65536), as in tests/interop/unixfs_cids.mjs (every chunk differs)."""
    base = bytes((131 * k + 31 * (k // 256)) % 256 for k in range(65536))
    xor = [bytes(x ^ q for x in range(256)) for q in range(256)]
    out = bytearray()
    for h in range(-(-size // 65536)):
        out += base.translate(xor[(197 * h + 53 * (h // 256)) % 256])
    return bytes(out[:size])


def build(
    data: bytes, mh_code: int = MH_SHA2_256, piece: int = 1 << 20, **layout: int
) -> tuple[Cid, list[Block]]:
    builder = DagBuilder(mh_code, **layout)
    blocks: list[Block] = []
    for i in range(0, len(data), piece):
        blocks += builder.feed(data[i : i + piece])
    root, rest = builder.finish()
    return root, blocks + rest


# (size, root) from ipfs-unixfs-importer with the default (Kubo) layout.
SHA256_ROOTS = [
    (0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (1, "bafkreidogqfzz75tpkmjzjke425xqcrmpcib2p5tg44hnbirumdbpl5adu"),
    (174, "bafkreihsfheltxy536fxvyrbsvigi35hrkscwfsw2bg6ddaapctroylgfe"),
    (262143, "bafkreidg7ihel3z5sa4hsci5knzfnlifeseqg4vq4fsuk4tmqwhejhqxde"),
    (262144, "bafkreihl6nx5mv5zr7kzuixdgu7ouqsxoc7a2vq2vu7m4m2bclqg6x266i"),
    (262145, "bafybeiem63ke2ty6gkuueqdr7k66h6qiz6boylg472nl3t22dpjt6pmdaa"),
    (3 * 262144 + 5, "bafybeicrjip2gvvgmrdtxqtbxufietfszqfel573vopfschoe5i2lelnqi"),
    (174 * 262144, "bafybeicvtwkhdgdrokzpmxy27e6zqwbrompishao4kuibd5mdhtf5ggttq"),  # one full node
    (175 * 262144, "bafybeib5ngggql5q3wlc7jld63ihbkw3rp3ppnt4pev2y5e54k6lxcoh3i"),  # second level
]
# 64 MiB + 100000 bytes: 257 chunks, two levels, a partial last chunk. Only the root was kept.
BIG_SIZE, BIG_ROOT = 67_208_864, "bafybeicgxsr6kchr64rcvpoeqlb3vffrq3vet3rqeejm2wlghpjyent7sq"

# chunkSize 1024, maxChildrenPerNode 3: deep trees from small inputs.
SMALL_LAYOUT = {"chunk_size": 1024, "max_links": 3}
SMALL_ROOTS = [
    (0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (1, "bafkreidogqfzz75tpkmjzjke425xqcrmpcib2p5tg44hnbirumdbpl5adu"),
    (1024, "bafkreiavljrljs3jarbrvwnlzewsor4u2c3kendtuq27xu67eba3g5y3qq"),
    (1025, "bafybeid25vbtdxqhzliiidqaczqwaek53fk5urkdsgxmeypecsb7fvtuyq"),
    (3072, "bafybeibsmrypsh356o5lykl7brvq3d57psh3pmi52qpb4v5omc35u7gjze"),
    (3073, "bafybeiaxf5su7ypdo7tkh654fzaabe25phtzxvah7cubyhmdgitrssojwm"),
    (9216, "bafybeie5cvkvqgymh733hnzsfu4ah3osz43t6ldme2cbsqbthrimiuwpb4"),
    (9217, "bafybeic4yhv6qzwlsx6emo3d4dxybwq4l2adw4qvnb6az3h2p5qyys4rpm"),
    (28148, "bafybeih5gof3wxrtacvnv47bg6ewko75tgb2filgfkvqjqqung5lmsroii"),
    (100000, "bafybeiee2w7af4culvhayxjtzuy4phnecr26jvukzceztqjonkjnznmszu"),
]

# Every block, post-order (children before parents, root last), as [cid, block length].
SHA256_BLOCKS_3_CHUNKS_PLUS_5 = [
    ("bafkreihl6nx5mv5zr7kzuixdgu7ouqsxoc7a2vq2vu7m4m2bclqg6x266i", 262144),
    ("bafkreig3qsqyy62a46otbjegfongqku5iw5fgd3rvvm7yszo4jq4nbw6a4", 262144),
    ("bafkreifetzscew7f47pcvqv57uhcbihhnfe6wijm5suzvcbu66h4dmopme", 262144),
    ("bafkreicsuknd5qqkexhtkimnl5gc4k5a2r42pchldt2fccoqimyruz7vku", 5),
    ("bafybeicrjip2gvvgmrdtxqtbxufietfszqfel573vopfschoe5i2lelnqi", 204),
]
# 10247 bytes with the small layout: 11 leaves, a full level-2 node, then 2 leaves wrapped in a node,
# wrapped again in a node of one link so that all leaves sit at depth 3.
SMALL_BLOCKS_10247 = [
    ("bafkreiavljrljs3jarbrvwnlzewsor4u2c3kendtuq27xu67eba3g5y3qq", 1024),
    ("bafkreic5mdlh3bit5zwwzrpy7plr5wqwxndnyon7qvuxejnhhe4wmwvpg4", 1024),
    ("bafkreicpteoya5dnguqls6pq57pzfmbik6ecucarpdph2ia7x2fok5iyau", 1024),
    ("bafybeibsmrypsh356o5lykl7brvq3d57psh3pmi52qpb4v5omc35u7gjze", 151),
    ("bafkreicjgtnypa6shukz7cmlu4thdlerdo3v5tiwacv2odk37uqsqaz5q4", 1024),
    ("bafkreif24lvzpkiwu7yw7gc77l5fjlkqxyysenbjpvi6rygkimau53mjeq", 1024),
    ("bafkreibvpbzxlxcn6yvxgy4mk7n4wgh63he2kqarr2ydjapbe5fo5lsvla", 1024),
    ("bafybeiemvmwpyybfmguecr45d3dvrygesybpz5su4xc4q7dkmkldi6mgfa", 151),
    ("bafkreidpatqhpae7rc6422zkhtcrdhnladcr2csnx6edmn6ehf6a6p7lfa", 1024),
    ("bafkreicqldhfp6srgha3mcjwmolifvfaaoapg2sjn5zhaffs4rhkkunzta", 1024),
    ("bafkreibmyusp7cgeibbjruzdn7wposyuggzxrw55g6ry3z6g4fny55uhie", 1024),
    ("bafybeib2bmgekz6xmj3edtkejacqatvoi3xcxueuxqxm3c4u44d7virjsi", 151),
    ("bafybeie5cvkvqgymh733hnzsfu4ah3osz43t6ldme2cbsqbthrimiuwpb4", 151),
    ("bafkreif3avfhuh5vn2uhumcjewi3jwi5rd5w2o2jsnntypklem6mxkkn2m", 1024),
    ("bafkreic4b3qq64neeivw5zkdfcpojyarxpocncp7ypd6fpvd3ehvsbddwi", 7),
    ("bafybeibupzrboxeh3ohjoojs3l6gbps6k5bmdxxliuhtdgadotoppq7t4a", 101),
    ("bafybeieqlbaso4t4xlxfknt24brf3j4onlqjx2xfrvhg3n624lp75cepve", 55),
    ("bafybeie75h3nmj2zuji5qcrcf4up6a6eqyblt4jko7htcuvomgctpmsge4", 103),
]

BLAKE3_ROOTS = [
    (0, "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi"),
    (1, "bafkr4ibnhlpn74i3mhyuzcdogwx2anttnxgypj2ne624cuicexiplexccm"),
    (262144, "bafkr4icyhq54bbckdxmvitpg7xazw7rdsdxhetvvclcmyeufdbrlikmlom"),
    (262145, "bafyb4ihxqap4kzxwrkvvnhtaiko7do5evv4l2nrqr5a2fpl5vbyp5drb6u"),
    (3 * 262144 + 5, "bafyb4ibwm335jyibtyvqf444pjzfkbh5lxdwoz244haq3ldj2n3prkzteu"),
    (175 * 262144, "bafyb4iaqyp4ocfywcffzqzdtgexwmul6qhwcq5drou2tcns34vslmshokq"),
]
BLAKE3_SMALL_BLOCKS_10247 = [
    ("bafkr4icbqz2eihiiqs2c64jewrfctzu5ibczcrwjyunh3o3gxnzqd5bkdy", 1024),
    ("bafkr4ifnhaimxanr7bikadiek5pcxy5taz6vgzmli27ddozunmfcw4nmh4", 1024),
    ("bafkr4ieveujxtu7nv5h4s33vmukgzwcjlbzdgsfals4k627ybvvek6u65e", 1024),
    ("bafyb4ih3u65hvxq3gw6mzw5ddom4fnegwe3uccd6swkeb3res5hclgmnh4", 151),
    ("bafkr4ibce2lvby2fhbcdpjoqn5va2mnoq6ri2y4eelgg6dfdvv4hhq4w6m", 1024),
    ("bafkr4ihlxbimbwzpo2hmpye4g2muvmbvzc2et6aj5nr4un2vtesiw5anzq", 1024),
    ("bafkr4icitmhp2pzt3gcep5ghh3nh4c7qm2wx7rv57jy6rnbcq56emswr6y", 1024),
    ("bafyb4igiqpxs6vens42wqcfyrz7rpsg4u7kkeeawshdclebrkipvfkcqt4", 151),
    ("bafkr4ihrtzj6esg2mlly4wxmo6k3bwvsgpvafuu37kffo775445p6atvyu", 1024),
    ("bafkr4ihws7avzivxtpkdq3gldodorbmubnjhdqnlfftw3uuyimom7jm7oa", 1024),
    ("bafkr4id253vpci2deafovozu4q7sq2bjx2o7czntnchr7h66czucub2u2m", 1024),
    ("bafyb4ib55lyhyczrqncz6uz42s2pa2jjwvyvvfbbwbisjp3osagp4shupi", 151),
    ("bafyb4iafp5z2u7bhri7bh5hkugkkspalsm64bwy5vkwxaxwxrtba4jl4ce", 151),
    ("bafkr4iduksjr3miucypl7qtpklv6wl3pfnkjo75iu7zbqrpa6nlgwnzdni", 1024),
    ("bafkr4iexyegdqj4dwkkchs4bdxnlkptvopgwaxyyaaww63eefj66d6cw3i", 7),
    ("bafyb4icwml7txvg4q2g6duxriuabxmvt67bj2qm77qdkywtnxbx4r4bb4m", 101),
    ("bafyb4igpa72knk6xshjbydz4pchjgrsyuyj5n3dzpbmvmuzx4yfiz2yr2e", 55),
    ("bafyb4ighzuryleh5lmwohvdkkt5tlin53agzs2nusfxyr2x5a2euk5zmeq", 103),
]


def listing(blocks: list[Block]) -> list[tuple[str, int]]:
    return [(str(b.cid), len(b.data)) for b in blocks]


# --- known answers: DAGs ----------------------------------------------------------------------------


def test_constants_match_kubo() -> None:
    assert (CHUNK_SIZE, MAX_LINKS, MAX_BLOCK_BYTES) == (262_144, 174, 1_048_576)
    assert (CODEC_RAW, CODEC_DAG_PB, MH_SHA2_256, MH_BLAKE3) == (0x55, 0x70, 0x12, 0x1E)
    assert HASHES == {"sha2-256": 0x12, "blake3": 0x1E}


def test_interop_bytes_formula() -> None:
    data = interop_bytes(65536 * 2 + 3)
    for i in (0, 1, 255, 256, 65535, 65536, 65537, 131074):
        p = (131 * (i % 65536) + 31 * ((i % 65536) // 256)) % 256
        q = (197 * (i // 65536) + 53 * (i // 65536 // 256)) % 256
        assert data[i] == p ^ q


@pytest.mark.parametrize(("size", "root"), SHA256_ROOTS)
def test_sha256_roots_match_the_js_importer(size: int, root: str) -> None:
    cid, blocks = build(interop_bytes(size))
    assert str(cid) == root
    assert blocks[-1].cid == cid
    assert all(verify_block(b.cid, b.data) for b in blocks)


def test_64_mib_root_matches_the_js_importer() -> None:
    cid, _ = build(interop_bytes(BIG_SIZE))
    assert str(cid) == BIG_ROOT


@pytest.mark.parametrize(("size", "root"), SMALL_ROOTS)
def test_small_layout_roots_match_the_js_importer(size: int, root: str) -> None:
    cid, _ = build(interop_bytes(size), piece=777, **SMALL_LAYOUT)
    assert str(cid) == root


def test_every_block_matches_the_js_importer() -> None:
    _, blocks = build(interop_bytes(3 * 262144 + 5))
    assert listing(blocks) == SHA256_BLOCKS_3_CHUNKS_PLUS_5
    _, blocks = build(interop_bytes(10247), piece=500, **SMALL_LAYOUT)
    assert listing(blocks) == SMALL_BLOCKS_10247


@pytest.mark.parametrize(("size", "root"), BLAKE3_ROOTS)
def test_blake3_roots_match_the_patched_js_importer(size: int, root: str) -> None:
    cid, blocks = build(interop_bytes(size), MH_BLAKE3)
    assert str(cid) == root
    assert all(b.cid.mh_code == MH_BLAKE3 for b in blocks)


def test_blake3_blocks_match_the_patched_js_importer() -> None:
    _, blocks = build(interop_bytes(10247), MH_BLAKE3, **SMALL_LAYOUT)
    assert listing(blocks) == BLAKE3_SMALL_BLOCKS_10247
    # Same shape as sha2-256: block for block the same lengths.
    assert [n for _, n in BLAKE3_SMALL_BLOCKS_10247] == [n for _, n in SMALL_BLOCKS_10247]


# --- known answers: CIDs ------------------------------------------------------------------------


def test_empty_raw_block_cid() -> None:
    cid = block_cid(b"", CODEC_RAW, MH_SHA2_256)
    assert str(cid) == EMPTY_RAW_CID
    assert cid.to_bytes().hex() == "01551220" + EMPTY_SHA256
    assert (cid.version, cid.codec, cid.mh_code, cid.digest.hex()) == (
        1,
        CODEC_RAW,
        MH_SHA2_256,
        EMPTY_SHA256,
    )
    assert repr(cid) == f"Cid('{EMPTY_RAW_CID}')"
    assert Cid.parse(EMPTY_RAW_CID) == cid
    assert Cid.from_bytes(cid.to_bytes()) == cid


def test_empty_raw_block_cid_blake3() -> None:
    cid = block_cid(b"", CODEC_RAW, MH_BLAKE3)
    assert str(cid) == "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi"
    assert cid.to_bytes().hex() == "01551e20" + EMPTY_BLAKE3


def test_hash_bytes() -> None:
    assert hash_bytes(b"", MH_SHA2_256).hex() == EMPTY_SHA256
    assert hash_bytes(b"", MH_BLAKE3).hex() == EMPTY_BLAKE3
    assert hash_bytes(b"abc", MH_SHA2_256) == hashlib.sha256(b"abc").digest()
    with pytest.raises(HubError) as exc:
        hash_bytes(b"", 0x16)
    assert exc.value.code == "bad_request.invalid_param"


def test_parse_cid_v0() -> None:
    cid = Cid.parse(EMPTY_DIR_V0)
    assert (cid.version, cid.codec, cid.mh_code, cid.digest.hex()) == (
        0,
        CODEC_DAG_PB,
        MH_SHA2_256,
        EMPTY_DIR_DIGEST,
    )
    assert str(cid) == EMPTY_DIR_V0
    assert cid.to_bytes().hex() == "1220" + EMPTY_DIR_DIGEST
    assert Cid.from_bytes(cid.to_bytes()) == cid
    v1 = Cid(1, cid.codec, cid.mh_code, cid.digest)
    assert str(v1) == EMPTY_DIR_V1
    assert Cid.parse(EMPTY_DIR_V1) == v1 != cid


def test_other_multibases_parse_to_the_same_cid() -> None:
    cid = Cid.parse(EMPTY_RAW_CID)
    # Spellings printed by multiformats' CID.toString(base58btc / base16).
    assert Cid.parse("zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW") == cid
    assert Cid.parse("f01551220" + EMPTY_SHA256) == cid
    assert Cid.parse("F01551220" + EMPTY_SHA256.upper()) == cid
    assert Cid.parse("B" + EMPTY_RAW_CID[1:].upper()) == cid


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([CODEC_RAW, CODEC_DAG_PB]),
    st.sampled_from([MH_SHA2_256, MH_BLAKE3]),
    st.binary(min_size=32, max_size=32),
)
def test_text_and_bytes_round_trip(codec: int, mh_code: int, digest: bytes) -> None:
    cid = Cid(1, codec, mh_code, digest)
    text = str(cid)
    assert text.startswith("b") and text == text.lower()
    assert Cid.parse(text) == cid
    assert Cid.from_bytes(cid.to_bytes()) == cid
    assert str(Cid.parse(text)) == text
    if codec == CODEC_DAG_PB and mh_code == MH_SHA2_256:
        v0 = Cid(0, codec, mh_code, digest)
        assert str(v0).startswith("Qm") and len(str(v0)) == 46
        assert Cid.parse(str(v0)) == v0
        assert Cid.from_bytes(v0.to_bytes()) == v0


def test_cids_are_usable_as_keys() -> None:
    a = Cid.parse(EMPTY_RAW_CID)
    b = block_cid(b"", CODEC_RAW, MH_SHA2_256)
    assert {a: 1}[b] == 1


# --- errors ---------------------------------------------------------------------------------------


def b32(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


DIGEST = bytes.fromhex(EMPTY_SHA256)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("z" + "2" * 300, "longer than 256"),
        ("mAVUSIOOwxEKY/BwUmvv0yJlvuSQnrkHkZJuTTKSVmRt4UrhV", "multibase"),  # base64: not accepted
        ("!afkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "multibase"),
        ("b", "nothing else"),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk1", "base32"),  # '1' is not base32
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykU", "lower-case"),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv", "canonical"),  # stray low bits
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvy", "digest"),  # truncated
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk===", "base32"),
        (b32(bytes([1, 0x71, 0x12, 0x20]) + DIGEST), "codec 0x71"),  # dag-cbor
        (b32(bytes([1, 0x55, 0x16, 0x20]) + DIGEST), "multihash 0x16"),  # sha3-256
        (b32(bytes([1, 0x55, 0x12, 0x20]) + DIGEST[:31]), "digest"),
        (b32(bytes([1, 0x55, 0x12, 0x1F]) + DIGEST[:31]), "digest"),  # consistent but short
        (b32(bytes([1, 0x55, 0x12, 0x20]) + DIGEST + b"\0"), "digest"),  # trailing byte
        (b32(bytes([2, 0x55, 0x12, 0x20]) + DIGEST), "version 2"),
        (b32(bytes([0, 0x55, 0x12, 0x20]) + DIGEST), "version 0"),  # v0 has no binary version byte
        (b32(bytes([1, 0xD5, 0x00, 0x12, 0x20]) + DIGEST), "minimal"),  # 0x55 in two bytes
        (b32(bytes([1, 0x55])), "truncated"),
        ("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3N0", "base58"),  # '0' is not base58btc
        ("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"[:-1] + "z", None),  # a different, valid digest
        ("Qm111111111111111111111111111111111111111111", "CIDv0"),
        ("f0155122", "base16"),
        ("f0155  1220" + EMPTY_SHA256, "canonical base16"),  # fromhex would skip the spaces
        ("f01551220" + EMPTY_SHA256.upper(), "base16"),
        ("zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbD0", "base58"),
    ],
)
def test_malformed_text_is_refused(text: str, reason: str | None) -> None:
    if reason is None:
        assert Cid.parse(text).version == 0
        return
    with pytest.raises(HubError) as exc:
        Cid.parse(text)
    assert exc.value.code == "bad_request.invalid_param"
    assert reason in exc.value.message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (bytes([1, 0x71, 0x12, 0x20]) + DIGEST, "codec 0x71"),
        (bytes([1, 0x55, 0x16, 0x20]) + DIGEST, "multihash 0x16"),
        (bytes([1, 0x55, 0x12, 0x20]) + DIGEST[:-1], "digest"),
        (bytes([3, 0x55, 0x12, 0x20]) + DIGEST, "version 3"),
        (bytes([0x12, 0x20]) + DIGEST[:-1], "version 18"),  # a v0 multihash one byte short
        (bytes([1, 0x55, 0x12, 0x80]), "truncated"),
        (bytes([1] + [0xFF] * 9 + [0x01]), "longer than 9 bytes"),
    ],
)
def test_malformed_bytes_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(HubError) as exc:
        Cid.from_bytes(raw)
    assert exc.value.code == "bad_request.invalid_param"
    assert reason in exc.value.message


def test_constructor_validates() -> None:
    for args in [
        (1, 0x71, MH_SHA2_256, DIGEST),
        (1, CODEC_RAW, 0x16, DIGEST),
        (1, CODEC_RAW, MH_SHA2_256, DIGEST[:20]),
        (2, CODEC_RAW, MH_SHA2_256, DIGEST),
        (0, CODEC_RAW, MH_SHA2_256, DIGEST),  # v0 is dag-pb only
        (0, CODEC_DAG_PB, MH_BLAKE3, DIGEST),  # and sha2-256 only
    ]:
        with pytest.raises(HubError):
            Cid(*args)


def test_verify_block() -> None:
    data = b"hello blobs"
    cid = block_cid(data, CODEC_RAW, MH_SHA2_256)
    assert verify_block(cid, data)
    assert not verify_block(cid, data + b"!")
    assert not verify_block(block_cid(data, CODEC_RAW, MH_BLAKE3), data + b"!")
    assert verify_block(block_cid(data, CODEC_DAG_PB, MH_BLAKE3), data)
    big = bytes(MAX_BLOCK_BYTES + 1)
    assert not verify_block(block_cid(big, CODEC_RAW, MH_SHA2_256), big)  # hash matches, too large
    exact = bytes(MAX_BLOCK_BYTES)
    assert verify_block(block_cid(exact, CODEC_RAW, MH_SHA2_256), exact)
