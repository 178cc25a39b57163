"""The `gram-jax` command."""

import argparse
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="gram-jax", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  q = sub.add_parser("quickstart", help="search on digits, then train")
  q.add_argument("--workdir", default="runs/quickstart")
  args = parser.parse_args(argv)
  if args.command == "quickstart":
    print("gram-jax quickstart: not yet (the GRAM search lands with issue 3)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
