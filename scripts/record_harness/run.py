"""Run a record's own train_gpt.py tiny on CPU and keep what it wrote and printed.

    /work/pg/venv312/bin/python scripts/record_harness/run.py RECORD_DIR \
        --demo DEMO_DATA --work /work/pg/formats/runs [--fixtures tests/fixtures/records]

The record's source is read from RECORD_DIR (decoded if it is a shim; never copied into
this repository), its device strings mapped to CPU and its CUDA-only pieces stubbed
(`stubs.py`), and its entry point (normally `main`) run in a child process, in a fresh
working folder, with its own hyperparameters set to a tiny model through its environment
variables (`table.py`). The child prints one JSON line: the numbers the record printed
(`<tag> val_loss:X val_bpb:Y` lines, the `_exact` ones at full precision), the artifact
its own quantize/serialize code wrote, the environment used. With --fixtures, the
artifact, the val shard and tokenizer and `record.json` are copied to
`FIXTURES/<folder>/` (data shared under `FIXTURES/_data/sp<V>/`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import shim  # noqa: E402
import table  # noqa: E402
import ttt_table  # noqa: E402

PIN = "4908dc46f21ed3fdd08d2fdca285deb2194b9599"
# `<tag> [key:value ...] val_loss:X val_bpb:Y`; a tag may be words ("diagnostic quantized")
_NUMBERS = re.compile(
    r"^(?P<tag>[\w.\-]+(?: [\w.\-]+)*?)\s+(?:[\w.\-]+:\S+\s+)*?"
    r"val_loss:(?P<loss>[-\d.eE+na]+)\s+val_bpb:(?P<bpb>[-\d.eE+na]+)"
)


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for stream in self.streams:
            stream.write(s)
        return len(s)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def driver(folder: str) -> table.Driver:
    """The folder's harness settings: its TTT driver (ttt_table.py) when HARNESS_TTT asks
    for the records' own TTT evals and it has one (`warm-a`, `warm-a-lora`: the
    warm-start-A variants), else its table.py driver."""
    mode = os.environ.get("HARNESS_TTT")
    drivers = {
        "warm-a": ttt_table.WARM_A_DRIVERS,
        "warm-a-lora": ttt_table.WARM_A_LORA_DRIVERS,
    }.get(mode or "", ttt_table.TTT_DRIVERS)
    if mode and folder in drivers:
        return drivers[folder]
    return table.DRIVERS.get(folder, table.Driver())


def parse_numbers(text: str) -> dict[str, dict[str, float]]:
    """Every `<tag> val_loss:X val_bpb:Y` line; a later line with the same tag wins."""
    found = {}
    for line in text.splitlines():
        m = _NUMBERS.match(line.strip())
        if m:
            found[m.group("tag")] = {
                "val_loss": float(m.group("loss")),
                "val_bpb": float(m.group("bpb")),
            }
    return found


def child(args: argparse.Namespace) -> None:
    """Inside the child: stub, exec the record's source as a module, call its entry."""
    import stubs
    import torch

    stubs.install()
    torch.set_num_threads(1)
    spec = json.loads(args.child)
    os.chdir(spec["work"])
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(key, None)
    os.environ.update(spec["env"])
    source = stubs.cpu_source(shim.decode_source(Path(spec["script"])))
    for pattern, replacement in spec["edits"]:
        source = re.sub(pattern, replacement, source)
    module = {
        "__name__": "record_train_gpt",
        "__file__": spec["script"],
        "__builtins__": __builtins__,
    }
    sys.modules["record_train_gpt"] = type(sys)("record_train_gpt")
    sys.modules["record_train_gpt"].__dict__.update(module)
    namespace = sys.modules["record_train_gpt"].__dict__
    buf = io.StringIO()
    with contextlib.redirect_stdout(Tee(sys.stderr, buf)):
        exec(
            compile(source, spec["script"], "exec"), namespace
        )  # harness only: the record's own code
        namespace[spec["entry"]]()
    print(json.dumps({"stdout": buf.getvalue(), "hparams": _resolved(namespace)}))


def _resolved(namespace: dict) -> dict:
    """The record's Hyperparameters as they resolved under the run's environment (plain
    values only): what a test needs to rebuild the model without the record's code."""
    cls = namespace.get("Hyperparameters")
    if cls is None:
        return {}
    out = {}
    for key in dir(cls):
        value = getattr(cls, key, None)
        if key.startswith("_") or not isinstance(value, (bool, int, float, str)):
            continue
        if any(part in key for part in ("path", "dir", "file", "run_id")):
            continue
        out[key] = value
    return out


def run_record(record: Path, demo: Path, work_root: Path, fixtures: Path | None) -> dict:
    import tinydata

    folder = record.name
    drv = driver(folder)
    data = work_root / "data" / f"sp{drv.vocab}"
    data_info = tinydata.build(demo, data, vocab=drv.vocab, val_tokens=4097, train_tokens=200_000)
    data_name = f"sp{drv.vocab}"
    if drv.byte_sidecar:  # CaseOps: the same shards and tokenizer, plus the byte sidecar
        data_name += "-caseops"
        cased = work_root / "data" / data_name
        cased.mkdir(parents=True, exist_ok=True)
        for name in (data_info["tokenizer"], "fineweb_train_000000.bin", "fineweb_val_000000.bin"):
            shutil.copyfile(data / name, cased / name)
        data_info["sidecar"] = tinydata.write_sidecar(cased, cased / data_info["tokenizer"])
        data = cased
    work = work_root / "runs" / folder
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # The SP4096/SP8192 lineage finds its data under DATA_DIR in the official layout
    # (datasets/fineweb10B_sp<V>/, tokenizers/fineweb_<V>_bpe.model): the same files there.
    tree = data / "tree"
    (tree / "datasets" / f"fineweb10B_sp{drv.vocab}").mkdir(parents=True, exist_ok=True)
    (tree / "tokenizers").mkdir(parents=True, exist_ok=True)
    for name in ("fineweb_train_000000.bin", "fineweb_val_000000.bin"):
        shutil.copyfile(data / name, tree / "datasets" / f"fineweb10B_sp{drv.vocab}" / name)
    shutil.copyfile(data / data_info["tokenizer"], tree / "tokenizers" / data_info["tokenizer"])
    env = {
        **table.TINY_ENV,
        "DATA_DIR": f"{tree}/",
        "DATA_PATH": str(data),
        "TOKENIZER_PATH": str(data / data_info["tokenizer"]),
        "VOCAB_SIZE": str(drv.vocab),
        **drv.env,
    }
    original = shim.decode_source(record / drv.script)
    edits = [[p, r] for p, r in drv.edits if re.search(p, original)]
    spec = {
        "work": str(work),
        "env": env,
        "script": str(record / drv.script),
        "entry": drv.entry,
        "edits": edits,
    }
    fake_bin = work_root / "bin"
    fake_bin.mkdir(parents=True, exist_ok=True)
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\necho 'record harness: no GPU (CPU run)'\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={
            **os.environ,
            "PYTHONHASHSEED": "0",
            "OMP_NUM_THREADS": "1",
            # the venv's bin too: some records run its tools (pyminify) as subprocesses
            "PATH": f"{fake_bin}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        },
    )
    (work / "stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise SystemExit(f"{folder}: the record's code failed (rc {proc.returncode}):\n{tail}")
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    stdout = reply["stdout"]
    if drv.artifact:
        artifact = work / drv.artifact
    else:
        written = sorted(work.glob("final_model*.ptz")) or sorted(work.glob("*.ptz"))
        if len(written) != 1:
            raise SystemExit(
                f"{folder}: expected one *.ptz artifact, found {[p.name for p in written]}"
            )
        artifact = written[0]
    blob = artifact.read_bytes()
    import torch

    result = {
        "record": folder,
        "official_commit": PIN,
        "script": drv.script,
        "script_sha256": hashlib.sha256((record / drv.script).read_bytes()).hexdigest(),
        "source_sha256": hashlib.sha256(original.encode()).hexdigest(),
        "source_edits": edits,
        "entry": drv.entry,
        "env": {
            k: v for k, v in env.items() if k not in ("DATA_DIR", "DATA_PATH", "TOKENIZER_PATH")
        },
        "data": {
            "vocab_size": drv.vocab,
            "dir": data_name,
            "tokenizer": data_info["tokenizer"],
            "val_tokens": data_info["val_tokens"],
            **({"byte_sidecar": data_info["sidecar"]} if "sidecar" in data_info else {}),
        },
        "artifact": {
            "file": artifact.name,
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
        },
        "printed": parse_numbers(stdout),
        "hparams": reply.get("hparams", {}),
        "checks": [
            {
                "tag": tag,
                "protocol": protocol,
                "plan": plan,
                "seq_len": int(env.get("EVAL_SEQ_LEN") or env["TRAIN_SEQ_LEN"]),
                "stride": int(env["EVAL_STRIDE"]),
                **(check[3] if len(check) > 3 else {}),
            }
            for check in drv.checks
            for tag, protocol, plan in [check[:3]]
        ],
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "harness": "CPU fp32 (autocast, bf16 casts off), torch.compile identity, flash-attn->SDPA",
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    (work / "record.json").write_text(json.dumps(result, indent=2) + "\n")
    if fixtures is not None:
        dest = fixtures / folder
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact, dest / artifact.name)
        (dest / "record.json").write_text(json.dumps(result, indent=2) + "\n")
        shared = fixtures / "_data" / data_name
        shared.mkdir(parents=True, exist_ok=True)
        names = [data_info["tokenizer"], "fineweb_val_000000.bin"]
        for name in names + ([data_info["sidecar"]] if "sidecar" in data_info else []):
            shutil.copyfile(data / name, shared / name)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="*", type=Path)
    parser.add_argument("--demo", type=Path, default=Path("/work/pg/formats/data/demo1024"))
    parser.add_argument("--work", type=Path, default=Path("/work/pg/formats"))
    parser.add_argument("--fixtures", type=Path)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for record in args.records:
        result = run_record(record.resolve(), args.demo, args.work, args.fixtures)
        print(
            json.dumps(
                {
                    "record": result["record"],
                    "printed": result["printed"],
                    "artifact_bytes": result["artifact"]["bytes"],
                    "elapsed_s": result["elapsed_s"],
                }
            )
        )


if __name__ == "__main__":
    main()
