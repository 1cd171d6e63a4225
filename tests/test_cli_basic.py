"""The thin CLI: complete help, `nas variants`, `nas flops`, and one clear message on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas.cli import COMMANDS, build_parser, main
from nas.variants import list_variants, published

EXPECTED = (
    [f"mobile_former_{s}" for s in ("26m", "52m", "96m", "151m", "214m", "294m", "508m")]
    + [f"mobilevit_{s}" for s in ("xxs", "xs", "s")]
    + [f"mobilevitv2_{s}" for s in ("050", "075", "100", "125", "150", "175", "200")]
    + [f"mobilevitv3_{s}" for s in ("xxs", "xs", "s", "050", "075", "100")]
)


def run_nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, timeout=300)


def test_every_command_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(name for _, name, _ in COMMANDS)
    for name in sub.choices:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert f"nas {name}" in out and "options:" in out


def test_the_23_variants_are_registered_by_their_names():
    assert sorted(list_variants()) == sorted(EXPECTED)


def test_variants_json_has_all_rows_with_exact_params(capsys):
    assert main(["variants", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_variants()
    for r in rows:
        for key in ("name", "family", "resolution", "params", "madds_m", "published_params_m",
                    "published_madds_m", "published_top1"):
            assert key in r
        assert r["params"] == published(r["name"])["params_exact"], r["name"]
        if r["family"].startswith("MobileViT") and abs(r["madds_diff_pct"]) > 2:
            assert r["note"], f"{r['name']} differs by {r['madds_diff_pct']}% from the published MAdds without a note"


def test_flops_breakdown_sums_to_total(capsys):
    assert main(["flops", "mobilevit_xxs", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"] == published("mobilevit_xxs")["params_exact"]
    assert abs(sum(s["madds_m"] for s in d["stages"].values()) - d["madds_m"]) < 1e-6
    assert abs(d["analytic_madds_m"] - d["madds_m"]) / d["madds_m"] < 0.005


@pytest.mark.parametrize("args, needle", [
    (["flops", "mobilevit_xxx"], "unknown variant 'mobilevit_xxx'"),
    (["flops", "missing.yaml"], "no such file"),
    (["variants", "--family", "ViT"], "unknown family"),
])
def test_bad_input_one_message_no_traceback(args, needle):
    p = run_nas(*args)
    assert p.returncode != 0
    assert needle in p.stderr
    assert "Traceback" not in p.stderr and "fix:" in p.stderr


@pytest.mark.parametrize("args, needle", [
    (["train", "mobilevit_xxs", "--init", "{junk}"], "is not a weights file"),
    (["search", "--sampler", "bogus"], "invalid choice: 'bogus'"),
    (["search", "--strategy", "oneshot", "--supernet", "{junk}"], "is not a supernet run folder"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_bad_input_found_in_use_one_line_and_exit_2(tmp_path, args, needle):
    junk = tmp_path / "junk.pt"
    junk.write_text("not weights\n")
    p = run_nas(*(a.format(junk=junk) for a in args), "--results", str(tmp_path)) if args[0] == "search" \
        else run_nas(*(a.format(junk=junk) for a in args))
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "fix:" in p.stderr
    assert "Traceback" not in p.stderr and "usage:" not in p.stderr
    assert len([x for x in p.stderr.splitlines() if "error" in x]) == 1
    assert p.stderr.startswith("nas"), p.stderr  # the error comes first: no progress bar or log line before it


def test_a_tcmalloc_path_that_names_no_file_is_one_message_before_anything_runs(tmp_path):
    """NAS_TCMALLOC=PATH where PATH is no file: the command says so and how to fix it, exit 2, before argparse
    or any job (the re-exec reads it first)."""
    import os

    env = {**os.environ, "NAS_TCMALLOC": str(tmp_path / "libtcmalloc_typo.so")}
    env.pop("_NAS_REEXEC", None)
    p = subprocess.run([sys.executable, "-m", "nas", "variants"], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 2 and p.stdout == "", p.stdout[-500:]
    assert p.stderr.startswith("nas: error: NAS_TCMALLOC=") and "libtcmalloc_typo.so is not a file" in p.stderr
    assert "fix:" in p.stderr and "Traceback" not in p.stderr and len(p.stderr.splitlines()) == 2


def test_flops_on_a_malformed_and_an_unknown_knob_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nresolution: [\n")
    p = run_nas("flops", str(bad))
    assert p.returncode == 2 and "malformed YAML" in p.stderr and "Traceback" not in p.stderr
    from nas.variants import get_variant

    d = get_variant("mobilevit_xxs").to_dict()
    d["stages"][2]["blocks"][1]["patchsize"] = 2
    import yaml

    knob = tmp_path / "knob.yaml"
    knob.write_text(yaml.safe_dump(d))
    p = run_nas("flops", str(knob))
    assert p.returncode == 2 and "unknown knob 'patchsize'" in p.stderr and "Traceback" not in p.stderr


def test_the_command_ends_with_its_own_code_and_all_its_output_written(tmp_path, capsys):
    """The `nas` command skips the interpreter's teardown at exit (`exit_without_teardown`): what it printed
    into a file (block-buffered, so nothing is written before a flush) is all there, stderr's error too, and
    the exit code is the command's."""
    import os

    assert main(["variants"]) == 0
    expected = capsys.readouterr().out
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout into a file: block-buffered
    with open(out, "w") as o, open(err, "w") as e:
        rc = subprocess.run([sys.executable, "-m", "nas", "variants"], stdout=o, stderr=e, env=env,
                            timeout=300).returncode
    assert rc == 0 and out.read_text() == expected and len(expected.splitlines()) > 23
    with open(out, "w") as o, open(err, "w") as e:
        rc = subprocess.run([sys.executable, "-m", "nas", "flops", "mobilevit_xxx"], stdout=o, stderr=e, env=env,
                            timeout=300).returncode
    assert rc == 2 and "unknown variant 'mobilevit_xxx'" in err.read_text() and "fix:" in err.read_text()


def test_a_program_that_calls_main_itself_ends_as_usual():
    """Only the `nas` command skips the teardown: a program that calls `nas.cli.main()` (no arguments: it reads
    sys.argv) keeps its own exit handlers and its exit code."""
    code = ("import atexit, sys\nfrom nas.cli import main\natexit.register(lambda: print('own handler ran'))\n"
            "sys.argv = ['nas', 'flops', 'mobilevit_xs']\nassert main() == 0\nsys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 3 and "own handler ran" in p.stdout and "MAdds" in p.stdout, p.stderr[-2000:]
