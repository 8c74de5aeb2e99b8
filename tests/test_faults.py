"""Faults: kills mid-run lose nothing; bad inputs end with one clear message each.

The README's operations section lists each fault, what the user sees and what is preserved;
every row is one of these tests.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from workflow_helpers import DEMO, assert_results_match, copy_workflow, snakemake

from hybridrec.training.checkpoint import CheckpointSet

pytestmark = pytest.mark.integration


def _wait_for_text(path: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert process.poll() is None, f"the run ended before {path.name} showed {text!r}"
        assert time.monotonic() < deadline, f"{path.name} never showed {text!r}"
        time.sleep(0.2)


def _children_running(script: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", script], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


# the models' stage of the demo DAG: every job a kill can land in (the training jobs) and what
# reads their files (evaluation and export); the hybrid after it reads only those files
MODEL_STAGE = ("results/metrics/demo/linrec.json", "results/metrics/demo/fmlp.json")


@pytest.mark.long
def test_kills_mid_run_resume_to_the_results_of_a_clean_run(demo_run, tmp_path):
    """Kill one training job, then the whole snakemake process, under --cores 8; compare.

    1. SIGKILL the FMLP-Rec training process inside epoch 3: Snakemake reports the job failed.
    2. Rerun (the default profile has rerun-incomplete); during LinRec's training, SIGKILL the
       snakemake process group: snakemake and its jobs die at once, mid-DAG.
    3. `--unlock`, rerun to the end. Every result file equals the clean run's (the session's
       demo run, `--cores 2`), bit for bit: data, candidates, checkpoints, models, histories,
       metrics and exports.

    The runs stop after the models' stage (evaluation and export): no kill lands in the hybrid
    jobs after it, and they read only files this comparison covers.
    """
    workdir = copy_workflow(tmp_path)
    # targets first: --configfile takes every argument after it
    command = [sys.executable, "-m", "snakemake", *MODEL_STAGE, "--cores", "8", *DEMO]
    fmlp_log = workdir / "logs/train/demo/fmlp.log"
    linrec_log = workdir / "logs/train/demo/linrec.log"

    first = subprocess.Popen(command, cwd=workdir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    _wait_for_text(fmlp_log, "epoch 2/", first, timeout=600)
    time.sleep(1.0)  # inside epoch 3
    trainers = _children_running(f"{workdir}/.snakemake/scripts/.*train.py")
    assert trainers, "no training process to kill"
    for pid in trainers:
        os.kill(pid, signal.SIGKILL)
    assert first.wait(timeout=600) != 0  # snakemake saw its job die

    second = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_text(linrec_log, "epoch 2/", second, timeout=600)
    os.killpg(second.pid, signal.SIGKILL)
    second.wait()

    # nothing half-written is readable as complete: every Parquet file present reads in full
    for path in (workdir / "results").rglob("*.parquet"):
        pq.read_table(path)

    assert snakemake(workdir, "--unlock", *DEMO).returncode == 0
    result = snakemake(workdir, *MODEL_STAGE, "--cores", "8", "--rerun-incomplete", *DEMO)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "resuming from" in fmlp_log.read_text()
    compared = assert_results_match(workdir, demo_run)
    for model in ("linrec", "fmlp"):
        assert {f"models/demo/{model}/model.pt", f"models/demo/{model}/history.parquet",
                f"metrics/demo/{model}.json", f"predictions/demo/{model}/full/test.parquet",
                f"predictions/demo/{model}/uniform99/valid.parquet"} <= compared
        assert any(path.startswith(f"models/demo/{model}/checkpoints/") for path in compared)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(folder: Path) -> tuple[_Server, str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _fmlp_lines(users: int, length: int, offset: int = 0, first_user: int = 1) -> str:
    """FMLP-Rec's text format: a user id, then that user's item ids in order."""
    lines = [[first_user + u, *((u * 7 + i + offset) % 200 + 1 for i in range(length))]
             for u in range(users)]
    return "".join(" ".join(map(str, line)) + "\n" for line in lines)


BAD_INPUTS = {
    # dataset: (file name, content, config lines, what its log's last line must say)
    "malformed": ("malformed.txt", _fmlp_lines(20, 6) + "21 4 x9 5 6\n", "format: fmlp_txt",
                  "malformed.txt, line 21"),
    "truncated": ("ratings.dat", "1::10::5::978300760\n1::11::4::978300761\n2::10::",
                  "format: movielens_dat", "ratings.dat, line 3"),
    "empty": ("empty.txt", "", "format: fmlp_txt", "empty.txt"),
    "tooshort": ("tooshort.txt", _fmlp_lines(20, 1), "format: fmlp_txt",
                 "no user has 3 or more interactions"),
    "threes": ("threes.txt", _fmlp_lines(20, 3), "format: fmlp_txt",
               "datasets.threes: every user has fewer than 4 interactions"),
    "beyond": ("beyond.dat", "1::10::5::978300760\n1::99999999999999999999::4::978300761\n",
               "format: movielens_dat", "beyond.dat, line 2, column 'item'"),
}


def test_bad_inputs_each_end_with_one_message_and_keep_going(tmp_path):
    workdir = copy_workflow(tmp_path / "run")
    inputs = tmp_path / "inputs"
    served = tmp_path / "served"
    inputs.mkdir()
    served.mkdir()
    for name, content, _, _ in BAD_INPUTS.values():
        (inputs / name).write_text(content)
    # 150 users long enough to split, 5 who are too short: dropped and counted, not an error
    (inputs / "good.txt").write_text(_fmlp_lines(150, 6) + _fmlp_lines(5, 2, first_user=151))
    # a download whose bytes are not the ones the checksum describes
    (served / "corrupted.txt").write_text(_fmlp_lines(30, 6, offset=1))
    expected = hashlib.sha256(_fmlp_lines(150, 6).encode()).hexdigest()
    server, url = _serve(served)

    entries = [f"  {name}:\n    {fmt}\n    path: {inputs / file}\n"
               for name, (file, _, fmt, _) in BAD_INPUTS.items()]
    entries.append(f"  good:\n    format: fmlp_txt\n    path: {inputs / 'good.txt'}\n")
    entries.append(f"  corrupted:\n    format: fmlp_txt\n    url: {url}/corrupted.txt\n"
                   f"    checksum: sha256:{expected}\n")
    names = [*BAD_INPUTS, "good", "corrupted"]
    (workdir / "bad.yaml").write_text(
        f"run:\n  datasets: [{', '.join(names)}]\ndatasets:\n" + "".join(entries))
    try:
        # targets first: --configfile takes every argument after it
        result = snakemake(workdir, *[f"results/data/{name}/stats.json" for name in names],
                           "--cores", "2", "--keep-going", *DEMO, "bad.yaml", timeout=600)
    finally:
        server.shutdown()
    output = result.stdout + result.stderr
    assert result.returncode != 0

    stats = workdir / "results/data/good/stats.json"  # --keep-going ran it to the end
    assert json.loads(stats.read_text())["dropped_users"] == 5
    for name, (_, _, _, message) in BAD_INPUTS.items():
        last = (workdir / f"logs/preprocess/{name}.log").read_text().strip().splitlines()[-1]
        assert "ERROR" in last and message in last, (name, last)
        assert not list((workdir / f"results/data/{name}").rglob("*.parquet")), name
    download_log = (workdir / "logs/download/corrupted/corrupted.txt.log").read_text()
    assert "checksum" in download_log.lower() and expected in download_log
    assert not list((workdir / "resources/corrupted").rglob("corrupted.txt"))
    assert "Traceback" not in output


def test_a_catalogue_too_small_names_the_key_that_asks_for_the_protocol(tmp_path):
    """evaluation.protocols is [full]; the default hybrid.protocols [full, uniform99] still
    asks for uniform99, and a file's catalogue (40 items) is known only after preprocessing:
    its candidates job ends with one message naming the key that asks."""
    workdir = copy_workflow(tmp_path / "run")
    raw = tmp_path / "tiny.txt"
    raw.write_text("".join(f"{user} " + " ".join(str((3 * user + i) % 40 + 1) for i in range(6))
                           + "\n" for user in range(1, 31)))
    (workdir / "tiny.yaml").write_text(
        f"run: {{datasets: [tiny]}}\ndatasets:\n  tiny: {{format: fmlp_txt, path: {raw}}}\n"
        "evaluation: {protocols: [full]}\n")
    target = "results/data/tiny/candidates/test.uniform99.parquet"
    result = snakemake(workdir, target, "--cores", "1", *DEMO, "tiny.yaml", timeout=600)
    assert result.returncode != 0
    last = (workdir / "logs/candidates/tiny/uniform99.log").read_text().strip().splitlines()[-1]
    assert "ERROR" in last and "the catalogue holds 40 items" in last, last
    assert "remove 'uniform99' from hybrid.protocols[1] (`full`" in last, last
    assert "evaluation.protocols" not in last
    assert not (workdir / target).exists()


def test_a_pickled_checkpoint_is_named_not_used_and_never_loaded(tmp_path, caplog):
    """A checkpoint holding Python objects (not ours) is set aside, its log line saying so
    without torch's advice to load it with weights_only=False."""
    checkpoints = CheckpointSet(tmp_path, "a" * 64, logging.getLogger("hybridrec.test"))
    checkpoints.folder.mkdir(parents=True)
    pickled = checkpoints.epoch_path(1)
    torch.save({"config_hash": "a" * 64, "state": {"where": pathlib.Path("x")}}, pickled)
    with caplog.at_level(logging.ERROR):
        assert list(checkpoints.intact()) == []
    assert (f"{pickled}: holds Python objects (pathlib.PosixPath) a weights-only load refuses; "
            f"not used; moved aside to {pickled}.damaged") in caplog.text
    assert "weights_only" not in caplog.text and "can still be loaded" not in caplog.text
    assert not pickled.exists() and Path(f"{pickled}.damaged").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _weights(path: Path) -> dict:
    """Every tensor of a model.pt (format 2: a state dict per selected epoch) by (epoch, name)."""
    weights = torch.load(path, weights_only=True)["weights"]
    return {(epoch, name): tensor for epoch, state in weights.items()
            for name, tensor in state.items()}


def test_a_failing_rerun_and_a_damaged_checkpoint_lose_no_training(tmp_path):
    """Issue 12, cases 1 and 2, as a user meets them with demo FMLP-Rec.

    1. A `per_dataset` val_metric that validation does not compute stops the run before any
       job, the schema naming the key; every checkpoint and the model stay as they were.
    2. The newest checkpoint truncated and model.pt removed: the rerun names the damaged file,
       moves it aside, resumes from the epoch before and writes the same weights.
    """
    workdir = copy_workflow(tmp_path)
    (workdir / "small.yaml").write_text(
        "datasets:\n  demo:\n    demo: {users: 200}\n"
        "models:\n  fmlp: {epochs: 3, hidden_size: 16}\ntraining: {threads: 1}\n")
    config = (*DEMO, "small.yaml")
    target = "results/models/demo/fmlp/model.pt"
    model = workdir / target
    checkpoints = workdir / "results/models/demo/fmlp/checkpoints"
    first = snakemake(workdir, target, "--cores", "1", *config)
    assert first.returncode == 0, first.stderr[-4000:]
    trained, kept = _weights(model), _files(checkpoints)

    (workdir / "bad.yaml").write_text(
        "models:\n  fmlp:\n    per_dataset:\n      demo: {val_metric: hr@20}\n")
    bad = snakemake(workdir, target, "--cores", "1", *config, "bad.yaml")
    assert bad.returncode != 0
    output = bad.stdout + bad.stderr  # the schema names the key path before any job
    assert "On instance['models']['fmlp']['per_dataset']['demo']['val_metric']" in output
    assert "'hr@20' is not one of" in output
    assert _files(checkpoints) == kept and model.exists()

    (folder,) = [path for path in checkpoints.iterdir() if path.is_dir()]
    newest = folder / "epoch-0003.pt"
    newest.write_bytes(newest.read_bytes()[:5_000])
    model.unlink()
    again = snakemake(workdir, target, "--cores", "1", *config)
    assert again.returncode == 0, again.stderr[-4000:]
    log = (workdir / "logs/train/demo/fmlp.log").read_text()
    assert f"{newest.relative_to(workdir)}: damaged checkpoint" in log
    assert "after epoch 2" in log and "Traceback" not in log
    assert (folder / "epoch-0003.pt.damaged").stat().st_size == 5_000
    again_weights = _weights(model)
    assert trained.keys() == again_weights.keys()
    assert all(torch.equal(trained[key], again_weights[key]) for key in trained)
