"""``python -m tgv_deploy.training CONFIG OUT_DIR [--resume | --overwrite]``: the entry point torchrun launches."""

import argparse
import os
import sys

from tgv_deploy.errors import TgvDeployError
from tgv_deploy.io_utils import check_run_directory
from tgv_deploy.training.config import load_config
from tgv_deploy.training.trainer import MODEL_FILE, STATE_FILE, train

parser = argparse.ArgumentParser(prog="python -m tgv_deploy.training")
parser.add_argument("config")
parser.add_argument("out_dir")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--overwrite", action="store_true", help="start a new run in a non-empty OUT_DIR")
args = parser.parse_args()
try:
    # Every rank checks before the process group forms; no rank writes a file before all have
    # joined it, so no rank can see another's output here.
    run_dir = check_run_directory(args.out_dir, args.resume, args.overwrite)
    config = load_config(args.config)
except TgvDeployError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
if args.overwrite and int(os.environ.get("RANK", "0")) == 0:
    for name in (MODEL_FILE, STATE_FILE):
        (run_dir / name).unlink(missing_ok=True)
train(config, args.out_dir, resume=args.resume)
