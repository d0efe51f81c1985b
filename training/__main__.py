"""``python -m tgv_deploy.training CONFIG OUT_DIR [--resume]``: the entry point torchrun launches."""

import argparse

from tgv_deploy.training.config import load_config
from tgv_deploy.training.trainer import train

parser = argparse.ArgumentParser(prog="python -m tgv_deploy.training")
parser.add_argument("config")
parser.add_argument("out_dir")
parser.add_argument("--resume", action="store_true")
args = parser.parse_args()
train(load_config(args.config), args.out_dir, resume=args.resume)
