"""The runtime object (device, threads, memory format, precision, compile) and the Ray-free jobs it runs,
through the real trainer, scorer-free paths and the real baseline cache; the tuning package's shape."""

from __future__ import annotations

import ast
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.errors import ConfigError
from nas.jobs import TrialJob
from nas.runtime import Runtime
from nas.train import train_arch
from tests.test_proxy import QUICK, TINY, synthetic

ROOT = Path(__file__).resolve().parent.parent


def test_runtime_checks_its_settings_and_resolves_auto():
    for bad in ({"precision": "fp8"}, {"memory_format": "nhwc"}, {"threads": 0}, {"device": "tpu"},
                {"threads": "2"}, {"threads": 1.5}, {"threads": True}, {"compile": "yes"},
                {"keep_freed_memory": "no"}, {"keep_freed_memory": 0}, {"mkl_intel_path": "yes"}, {"tcmalloc": 1},
                {"dwconv_kernel": "on"}):
        with pytest.raises(ConfigError):
            Runtime(**bad)
    # a run.yaml's runtime dict with a string where a switch goes names the setting and the fix
    with pytest.raises(ConfigError, match="keep_freed_memory is 'no', not true or false"):
        Runtime.of({"keep_freed_memory": "no"})
    with pytest.raises(ConfigError, match="unknown runtime setting"):
        Runtime.of({"precision": "fp32", "fast": True})
    r = Runtime(device="auto").resolved()
    assert r.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert r.precision == ("bf16" if torch.cuda.is_available() else "fp32")
    assert Runtime.of(Runtime(precision="bf16").to_dict()) == Runtime(precision="bf16")


def test_runtime_key_follows_what_changes_the_numbers_not_threads():
    base = Runtime()
    assert base.key == Runtime(threads=2).key == Runtime(precision="fp32").key  # auto is fp32 on the CPU
    assert base.key == Runtime(keep_freed_memory=False).key  # the allocator changes no number
    assert Runtime(mkl_intel_path=True).key == Runtime(mkl_intel_path=False).key == base.key  # sum order, as threads
    assert Runtime(tcmalloc=True).key == Runtime(tcmalloc=False).key == base.key  # malloc does no arithmetic
    assert Runtime(dwconv_kernel=True).key == Runtime(dwconv_kernel=False).key == base.key  # sum order
    assert len({base.key, Runtime(precision="bf16").key, Runtime(memory_format="contiguous").key,
                Runtime(compile=True).key}) == 4


FAULTS = """
import resource, torch
from nas.runtime import Runtime
def faults():  # 24 activations of 4 MiB allocated, used and freed, as a step or an eval batch does (96 MiB:
    def step():  # more than glibc's largest dynamic trim threshold, 64 MiB, so default glibc always returns it)
        acts = [torch.empty(1 << 20).fill_(1.0) for _ in range(24)]
        del acts
    for _ in range(5):
        step()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(30):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
with Runtime().applied():  # keep_freed_memory is the default
    print(faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is Linux's")
def test_keep_freed_memory_stops_the_page_faults_of_reused_activations():
    """Under the runtime's default (keep_freed_memory) glibc keeps freed activations for reuse, so steps
    after the first fault no page in again. (Default glibc may or may not return them to the kernel: that
    depends on what else sits on its heap, which is why real runs varied from 50 to 4,700 faults a step.)
    A fresh process: the setting lasts for the life of a process."""
    from nas.runtime import keep_freed_memory

    if platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory()  # both mallopt settings took
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    on = int(out.split()[-1])
    assert on <= 8192, on  # 30 steps x 24,576 pages of 4 KiB: at most a one-time growth of the heap


def test_trainer_runs_in_the_runtime_it_is_given():
    data = synthetic()
    p = QUICK.replace(epochs=1)
    a = train_arch(TINY, data, p, runtime=Runtime(threads=1))
    b = train_arch(TINY, data, p, threads=1)  # the explicit argument and the runtime's field are one thing
    assert a.status == b.status == "completed"
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    # contiguous: the same network and data, another layout; same loss to float tolerance
    c = train_arch(TINY, data, p, runtime=Runtime(threads=1, memory_format="contiguous"))
    assert c.history[0]["train_loss"] == pytest.approx(a.history[0]["train_loss"], rel=1e-3, abs=1e-4)
    # bf16 autocast on the CPU really runs in bf16: the loss moves, a little
    d = train_arch(TINY, data, p, runtime=Runtime(threads=1, precision="bf16"))
    assert d.status == "completed", d.error
    assert d.history[0]["train_loss"] != a.history[0]["train_loss"]
    assert d.history[0]["train_loss"] == pytest.approx(a.history[0]["train_loss"], rel=0.05)


def test_a_train_job_is_a_plain_function_of_job_and_report(tmp_path, monkeypatch):
    """The job Ray runs, run without Ray: epoch reports, then one final report with the result."""
    from nas.train import job as jobmod

    monkeypatch.setitem(jobmod._DATA_CACHE, "quadrants", synthetic())
    job = TrialJob(kind="baseline", trial="b0", arch_id="", madds_m=0.0, variant="mobilevit_xxs", seed=3,
                   evaluate_test=True)
    from nas.variants import get_variant

    job = job.replace(arch_id=get_variant("mobilevit_xxs").arch_id)
    seen: list[dict] = []
    jobmod.train_job(job, seen.append, space={}, proxy=QUICK.replace(epochs=2, resolution=16).to_dict(),
                     data="quadrants", runtime=Runtime(threads=1).to_dict())
    assert [m.get("epoch") for m in seen] == [1, 2, 2] and seen[-1]["final"] and not seen[0].get("final")
    last = seen[-1]
    assert last["status"] == "completed" and last["seed"] == 3 and last["trial"] == "b0"
    assert last["test_top1"] is not None and last["eval_set"] == "test"
    assert all(isinstance(v, float) for v in json.loads(last["val_curve"]))  # validated after every epoch
    # curve=False: validated after the last epoch only, the same result
    once: list[dict] = []
    jobmod.train_job(job, once.append, space={}, proxy=QUICK.replace(epochs=2, resolution=16).to_dict(),
                     data="quadrants", runtime=Runtime(threads=1).to_dict(), curve=False)
    assert json.loads(once[-1]["val_curve"]) == [None, last["val_top1"]] and once[0]["val_top1"] is None
    assert once[-1]["val_top1"] == last["val_top1"] and once[-1]["test_top1"] == last["test_top1"]
    # a replay that does not give the proposed architecture is reported, not raised
    seen.clear()
    jobmod.train_job(job.replace(arch_id="not-this-one"), seen.append, space={}, proxy=QUICK.to_dict(),
                     data="quadrants")
    assert len(seen) == 1 and seen[0]["status"] == "failed" and "replay gave arch" in seen[0]["error"]


def test_ray_free_jobs_import_no_ray_and_nothing_reads_private_framework_state():
    code = ("import sys, nas.train.job, nas.supernet.score, nas.supernet.run, nas.jobs, nas.runtime; "
            "print('ray' in sys.modules, 'nas.search' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    # no Ray behind the jobs, and the supernet runner no longer imports the search (the old import circle)
    assert out.stdout.split() == ["False", "False"]
    for path in sorted((ROOT / "nas" / "tuning").glob("*.py")):
        tree = ast.parse(path.read_text())
        own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}  # our own private methods
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
                assert not any(part.startswith("_") for part in node.module.split(".")), (path.name, node.module)
                assert not any(a.name.startswith("_") for a in node.names), (path.name, node.module)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                # only our own private methods (never a Ray or Optuna object's state, inherited or not)
                assert ast.unparse(node.value) == "self" and node.attr in own, f"{path.name}: {ast.unparse(node)}"

def test_the_baseline_cache_keys_on_the_runtime(tmp_path):
    from nas.search.folder import BaselineCache

    row = {"trial": "mobilevit_xxs", "stage": "search", "seed": 0, "arch_id": "abc", "proxy_hash": "p",
           "dataset": "d", "status": "completed", "val_top1": 71.0, "kind": "baseline"}
    BaselineCache(tmp_path).put(row)
    assert BaselineCache(tmp_path).get("abc", "p", "d")["val_top1"] == 71.0
    assert BaselineCache(tmp_path, Runtime(threads=2)).get("abc", "p", "d") is not None
    assert BaselineCache(tmp_path, Runtime(precision="bf16")).get("abc", "p", "d") is None
    assert BaselineCache(tmp_path, Runtime(memory_format="contiguous")).get("abc", "p", "d") is None


def test_the_allocator_switch_is_a_flag_that_reaches_the_run(tmp_path):
    """`--no-keep-freed-memory` (nas search, confirm, train) turns the runtime's allocator setting off; a run
    records it in run.yaml's runtime and a resume reads it back from there."""
    from nas.cli import build_parser
    from nas.search.plan import SearchOptions, options_from_run, runtime_of

    p = build_parser()
    for cmd in (["search"], ["confirm", "RUN"], ["train", "mobilevit_xxs"]):
        assert p.parse_args(cmd).keep_freed_memory is True
        assert p.parse_args([*cmd, "--no-keep-freed-memory"]).keep_freed_memory is False
    assert runtime_of(SearchOptions()).keep_freed_memory is True
    assert runtime_of(SearchOptions(keep_freed_memory=False)).keep_freed_memory is False
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.yaml").write_text("name: r\nbudget_m: 3.0\nseed: 0\ndata: fashion-mnist\n"
                                  "runtime: {precision: auto, keep_freed_memory: false}\n")
    assert options_from_run(run, SearchOptions(resume=str(run))).keep_freed_memory is False


def test_a_resume_keeps_the_runs_curves_setting(tmp_path):
    """`--curves` is recorded in run.yaml: a resume validates its remaining search jobs as the run began (a run
    recorded before the setting existed: off), and `--resume RUN --curves` turns it on without a conflict."""
    from nas.search.plan import SearchOptions, options_from_run

    run = tmp_path / "r"
    run.mkdir()
    base = "name: r\nbudget_m: 3.0\nseed: 0\ndata: fashion-mnist\n"
    for recorded, given, want in (("curves: true\n", False, True), ("curves: false\n", False, False),
                                  ("", False, False), ("curves: false\n", True, True)):
        (run / "run.yaml").write_text(base + recorded)
        assert options_from_run(run, SearchOptions(resume=str(run), curves=given)).curves is want, (recorded, given)


GEMM = """
import json, time, torch
from nas.runtime import Runtime
torch.manual_seed(0)
torch.set_num_threads(1)
a, b = torch.randn(2048, 192), torch.randn(192, 384)
for _ in range(5):
    a @ b
t = time.perf_counter()
for _ in range(40):
    c = a @ b
print(json.dumps({"intel_path": Runtime().mkl_intel_path, "s": time.perf_counter() - t, "sum": float(c.double().sum()),
                  "first": c[0, :4].tolist()}))
"""


def _tiny_proxy(tmp_path: Path, train: int = 64, val: int = 64, test: int = 64) -> Path:
    """The confirm protocol with `train` / `val` / `test` images (default: a 4-step job), as a file for --proxy."""
    p = tmp_path / f"proxy-{train}-{val}-{test}.yaml"
    p.write_text((ROOT / "nas" / "proxy_confirm.yaml").read_text().replace("train_images: 2048", f"train_images: {train}")
                 .replace("val_images: 512", f"val_images: {val}").replace("test_images: 2000", f"test_images: {test}"))
    return p


@pytest.mark.skipif(not __import__("nas.blas").blas.amd_x86(), reason="MKL's vendor path: AMD CPUs only")
def test_the_nas_command_runs_mkl_on_its_intel_kernels_on_an_amd_cpu(tmp_path):
    """`nas` re-executes itself with the shim preloaded (a real C compiler builds it), its runtime records it and
    `--no-mkl-intel-path` leaves MKL as it is; a process given the shim computes the same product as one without,
    to float tolerance (speed is a benchmark's: BENCHMARKS.md, "MKL on AMD")."""
    import json

    from nas.blas import env_with_shim, shim_path

    if shim_path() is None:
        pytest.skip("no C compiler to build the shim")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, e in (("plain", env), ("shim", env_with_shim(env))):
        out = subprocess.run([sys.executable, "-c", GEMM], env=e, capture_output=True, text=True, check=True)
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    assert (runs["plain"]["intel_path"], runs["shim"]["intel_path"]) == (False, True)
    assert runs["shim"]["first"] == pytest.approx(runs["plain"]["first"], rel=1e-4, abs=1e-4)
    got = {}
    tiny = _tiny_proxy(tmp_path)  # only the runtime each job records is read here
    for extra in ([], ["--no-mkl-intel-path"]):
        out = tmp_path / f"m{len(extra)}.json"
        r = subprocess.run([sys.executable, "-m", "nas", "train", "mobilevit_xxs", "--proxy", str(tiny), "--threads",
                            "1", "--no-progress", "--out", str(out), *extra], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        got[bool(extra)] = json.loads(out.read_text())["runtime"]["mkl_intel_path"]
    assert got == {False: True, True: False}


def test_preloads_are_found_merged_once_and_never_re_executed_twice(tmp_path, monkeypatch):
    """`nas.malloc.library` takes NAS_TCMALLOC's path where it names a file, refuses one that names no file and
    takes nothing where NAS_TCMALLOC=0; `nas.preload.with_libraries` appends each library once, after the user's own, and
    quiets tcmalloc's large-allocation reports; `reexec` returns in the re-executed process."""
    from nas import malloc, preload

    lib = tmp_path / "libtcmalloc_fake.so"
    lib.write_bytes(b"")
    monkeypatch.setenv("NAS_TCMALLOC", str(lib))
    assert malloc.library() == lib and malloc.wanted([])
    assert not malloc.wanted(["train", "x", "--no-tcmalloc"])
    monkeypatch.setenv("NAS_TCMALLOC", str(tmp_path / "missing.so"))
    with pytest.raises(ConfigError, match="missing.so is not a file"):
        malloc.library()
    monkeypatch.setenv("NAS_TCMALLOC", "0")
    assert not malloc.wanted([]) and preload.libraries([]) == ([str(__import__("nas.blas").blas.shim_path())]
                                                               if __import__("nas.blas").blas.wanted([]) else [])
    env = preload.with_libraries({"LD_PRELOAD": "/opt/mine.so"}, [str(lib), str(lib)])
    assert env["LD_PRELOAD"] == f"/opt/mine.so {lib}"
    assert env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"] == str(1 << 40)
    assert preload.with_libraries(env, [str(lib)])["LD_PRELOAD"] == env["LD_PRELOAD"]
    assert "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD" not in preload.with_libraries({}, ["/x/mkl_intel_path.so"])
    monkeypatch.setenv("NAS_TCMALLOC", str(lib))
    monkeypatch.setenv("_NAS_REEXEC", "1")
    preload.reexec(["variants"])  # would replace this process if it did not return


ALLOCS = """
import json, sys
from nas.runtime import Runtime
print(json.dumps({"tcmalloc": Runtime().tcmalloc}))
"""


@pytest.mark.skipif(__import__("nas.malloc").malloc.library() is None,
                    reason="no tcmalloc on this system (scripts/setup.sh installs Debian's libtcmalloc-minimal4)")
def test_the_nas_command_runs_on_tcmalloc_with_the_same_numbers(tmp_path):
    """`nas` re-executes itself with tcmalloc preloaded where the system has it, its runtime records it, and
    `--no-tcmalloc` or NAS_TCMALLOC=0 leave glibc's malloc; a job trains to the same numbers either way (speed
    is a benchmark's: BENCHMARKS.md, "tcmalloc")."""
    import os

    from nas import preload

    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "_NAS_REEXEC", "NAS_TCMALLOC")}
    env["OMP_NUM_THREADS"] = "1"
    plain = subprocess.run([sys.executable, "-c", ALLOCS], env=env, capture_output=True, text=True, check=True)
    jobs = subprocess.run([sys.executable, "-c", ALLOCS], env=preload.env_for_jobs(env), capture_output=True,
                          text=True, check=True)
    assert (json.loads(plain.stdout)["tcmalloc"], json.loads(jobs.stdout)["tcmalloc"]) == (False, True)
    proxy = _tiny_proxy(tmp_path, train=1024, val=256, test=256)  # the confirm protocol at half its images: 64 steps
    got = {}
    for name, extra, e, p in (("tcmalloc", [], env, proxy), ("flag", ["--no-tcmalloc"], env, proxy),
                              ("env", [], {**env, "NAS_TCMALLOC": "0"}, _tiny_proxy(tmp_path))):
        out = tmp_path / f"{name}.json"
        r = subprocess.run([sys.executable, "-m", "nas", "train", "mobilevit_xxs", "--proxy", str(p), "--final",
                            "--threads", "1", "--no-progress", "--out", str(out), *extra], env=e, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        got[name] = json.loads(out.read_text())
    assert [got[n]["runtime"]["tcmalloc"] for n in ("tcmalloc", "flag", "env")] == [True, False, False]
    for key in ("val_top1", "test_top1"):  # the environment's way is a 4-step job: only its runtime is read
        assert got["tcmalloc"][key] == got["flag"][key], key
    assert got["tcmalloc"]["test_top1"] > 20  # it learned (10 classes): the equality above is not chance's
