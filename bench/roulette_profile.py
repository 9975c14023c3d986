"""Summarise the py-spy profiles `bench/roulette.py --py-spy PATH` wrote.

    .venv/bin/python -m bench.roulette_profile RAW_FOLDER [--phase steady]
        [--match portal/] [--top 40]

For each process kind (web, worker) prints the share of samples in which a
function appears anywhere on the stack (inclusive), for frames whose file
matches --match (default: our code and the libraries it leans on), and the
hottest leaf frames (self time). Input: py-spy's "raw" format, one
collapsed stack per line ending in a sample count.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def read_stacks(path: Path) -> Counter:
    stacks: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def frame_name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(path.split("/")[-2:])
    return f"{name} ({short})"


def summarise(stacks: Counter, match: tuple[str, ...], top: int) -> list[str]:
    total = sum(stacks.values())
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        seen = set()
        for frame in frames:
            if any(m in frame for m in match):
                name = frame_name(frame)
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
        if frames:
            leaf[frame_name(frames[-1])] += count
    lines = [f"  {total} samples"]
    lines.append("  inclusive (share of samples with the function on the stack):")
    for name, count in inclusive.most_common(top):
        lines.append(f"    {count / total:6.1%}  {name}")
    lines.append("  self (leaf frames):")
    for name, count in leaf.most_common(top // 2):
        lines.append(f"    {count / total:6.1%}  {name}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--phase", default="steady")
    parser.add_argument(
        "--match",
        action="append",
        default=None,
        help="substring of a frame's file to count inclusively (repeatable)",
    )
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    match = tuple(
        args.match
        or (
            "portal/",
            "jobs/",
            "sqlalchemy/",
            "jinja2/",
            "redis/",
            "rq/",
            "flask/",
            "werkzeug/",
            "sqlite3",
            "psycopg",
            "json/",
        )
    )
    for kind in ("web", "worker"):
        stacks: Counter = Counter()
        for path in sorted(args.folder.glob(f"{args.phase}-{kind}-*.txt")):
            stacks.update(read_stacks(path))
        if not stacks:
            continue
        print(f"{args.phase} / {kind}:")
        for line in summarise(stacks, match, args.top):
            print(line)


if __name__ == "__main__":
    main()
