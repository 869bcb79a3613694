"""Regenerate (or check) the gRPC stubs committed under ember/_private/protos.

    python tools/gen_protos.py          # rewrite the generated modules
    python tools/gen_protos.py --check  # exit 1 if the committed ones are stale

The stubs are committed so that installing ember-core needs no protoc; CI runs
--check so a .proto edit without regeneration cannot land.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile

PROTO_DIR = pathlib.Path(__file__).resolve().parents[1] / "packages/core/src/ember/_private/protos"


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    from grpc_tools import protoc  # dev dependency only

    protos = sorted(PROTO_DIR.glob("*.proto"))
    for proto in protos:
        rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}",
                          f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", str(proto)])
        if rc != 0:
            raise SystemExit(f"protoc failed on {proto}")
    produced = sorted(p for p in out_dir.iterdir() if p.suffix in (".py", ".pyi"))
    for path in produced:
        text = path.read_text()
        # grpc_tools emits absolute 'import ember_pb2'; the stubs live inside a package.
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        path.write_text(text)
    return produced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        produced = generate(pathlib.Path(tmp))
        stale = []
        for path in produced:
            target = PROTO_DIR / path.name
            if args.check:
                if not target.exists() or target.read_text() != path.read_text():
                    stale.append(target.name)
            else:
                target.write_text(path.read_text())
    if stale:
        print("stale generated protobuf modules: " + ", ".join(stale)
              + "\nrun: python tools/gen_protos.py", file=sys.stderr)
        return 1
    print("protobuf stubs " + ("up to date" if args.check else "regenerated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
