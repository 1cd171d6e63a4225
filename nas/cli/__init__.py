"""The `nas` command: a thin argparse layer. Each sub-command lives in its own module with
`add_arguments(parser)` and `run(args) -> int`; the library raises NasError, only this layer turns
errors into messages and exit codes."""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import re
import sys

from nas import __version__
from nas.errors import NasError

# (module, command name, one-line help)
COMMANDS = [
    ("variants", "variants", "list the 23 published variants: params and MAdds, ours against published"),
    ("flops", "flops", "params and MAdds of a variant or config YAML, with a per-stage breakdown"),
    ("train", "train", "proxy-train one network and write its metrics JSON"),
    ("search", "search", "search the hybrid space under a MAdds budget (Optuna proposes, Ray Tune trains)"),
    ("supernet", "supernet", "train a weight-sharing supernet, or extract a subnet with its inherited weights"),
    ("confirm", "confirm", "confirm a run's best candidates: paired seeds, held-out split, verdicts with intervals"),
    ("dashboard", "dashboard", "write the HTML dashboard of a run (accuracy vs MAdds, Pareto front)"),
    ("export", "export", "write a trial's architecture as YAML and ONNX"),
]


class Parser(argparse.ArgumentParser):
    """argparse with the project's error form: `nas CMD: error: ...` and a `fix:` line, exit 2, instead of the
    whole usage block (an invalid choice, a missing value, an unknown option). Sub-commands inherit it."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        print(f"  fix: see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nas",
        description="hybrid-nas: neural-architecture search over a unified Mobile-Former + MobileViT v1/v2/v3 "
                    "design space under a multiply-add budget.",
        epilog="Start with `nas variants`, then `nas search --budget 300M`. `nas COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"hybrid-nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, name, help_ in COMMANDS:
        mod = importlib.import_module(f"nas.cli.{module}")
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def join_negative_values(argv: list[str]) -> list[str]:
    """`--budget -5M` -> `--budget=-5M`: argparse reads a value that starts with '-' as an unknown option and
    prints its whole usage; joined, the value reaches the option's own check and its one-line error."""
    out: list[str] = []
    for a in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"^-\.?\d", a):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def exit_without_teardown(code: list[int]) -> None:
    """The `nas` command's last exit handler: once every other one has run (Ray's shutdown, logging's flush;
    they were registered later, so they run first), flush stdout and stderr and end the process with
    `code[0]`, skipping the interpreter's teardown of torch, Ray, pandas and plotly: 0.5-1.9 s a command
    (BENCHMARKS.md, "The command's exit"). Nothing is left to write then: every file of a run is written and
    closed when it is made. Without a code (an uncaught error) the interpreter ends as usual."""
    if not code:
        return
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left (`nas variants | head`), or a closed stream
            pass
    os._exit(code[0])


def report(who: str, e: NasError) -> int:
    """A NasError as the command's two lines on stderr (the error, then its fix); returns its exit code."""
    print(f"{who}: error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"  fix: {e.hint}", file=sys.stderr)
    return e.exit_code


def command() -> None:
    """The `nas` console command and `python -m nas`: `main()`, then the process ends with its exit code without
    the interpreter's teardown (`exit_without_teardown`). A program that calls `main()` itself ends as usual."""
    from nas.preload import reexec

    try:
        reexec(sys.argv[1:])  # its preloads first (nas.preload); a program that calls `main()` is not replaced
    except NasError as e:  # e.g. NAS_TCMALLOC naming no file: before argparse, so no subcommand to name
        sys.exit(report("nas", e))
    code: list[int] = []
    atexit.register(exit_without_teardown, code)  # before Ray, torch and logging register theirs: it runs last
    rc = main()
    code.append(rc)
    sys.exit(rc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        if os.environ.get("NAS_CHECKPOINT_EVERY_S"):  # refused before anything runs where it is bad
            from nas.train.checkpoint import checkpoint_every_s

            checkpoint_every_s()
        return int(args._run(args) or 0)
    except NasError as e:
        return report(f"nas {args.command}", e)
    except BrokenPipeError:  # `nas variants | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"\nnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    command()
