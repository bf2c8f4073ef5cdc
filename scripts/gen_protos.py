"""Regenerate (or, with --check, verify) the committed protobuf and gRPC code in protocols/proto/.

Generated files are committed so installs need no protoc; CI runs `--check` to fail on stale code.
grpcio-tools is pinned in pyproject.toml because newer releases emit code that needs protobuf >= 7,
which py-libp2p 0.8.1 does not allow.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protocols" / "proto"
# Only services get *_pb2_grpc.py; message-only files would produce empty grpc modules.
SERVICE_FILES = {"rpc.proto", "blobs.proto"}


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every .proto in PROTO_DIR, writing under out_root; return generated paths."""
    protos = sorted(PROTO_DIR.glob("*.proto"))
    rel = [str(p.relative_to(ROOT)) for p in protos]
    base = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
    ]
    subprocess.run([*base, *rel], check=True, cwd=ROOT)
    grpc_rel = [r for r in rel if Path(r).name in SERVICE_FILES]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}", f"--grpc_python_out={out_root}", *grpc_rel],
        check=True,
        cwd=ROOT,
    )
    out = out_root / "protocols" / "proto"
    return sorted(p for p in out.iterdir() if p.name.endswith((".py", ".pyi")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail if committed code differs from fresh output"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        if args.check:
            stale = [
                p.name
                for p in fresh
                if not (PROTO_DIR / p.name).exists() or not filecmp.cmp(p, PROTO_DIR / p.name, shallow=False)
            ]
            existing = {
                p.name
                for p in PROTO_DIR.iterdir()
                if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
            }
            extra = sorted(existing - {p.name for p in fresh})
            if stale or extra:
                print(
                    f"generated protobuf code is stale: {', '.join(stale + extra)}; "
                    "run: python scripts/gen_protos.py"
                )
                return 1
            print(f"generated protobuf code is current ({len(fresh)} files)")
            return 0
        for p in fresh:
            shutil.copyfile(p, PROTO_DIR / p.name)
        print(f"wrote {len(fresh)} files to {PROTO_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
