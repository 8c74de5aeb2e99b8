"""Code hashes: which package modules each rule runs, and which edits change its hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hybridrec import codehash

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def test_docstrings_and_comments_do_not_count_but_code_does(tmp_path):
    original = tmp_path / "a.py"
    original.write_text('"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    reworded = tmp_path / "b.py"
    reworded.write_text('"""Other words."""\n# a comment\n\ndef f(x):\n    """More."""\n'
                        "    return x + 1  # still one\n")
    changed = tmp_path / "c.py"
    changed.write_text('"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 2\n')
    assert codehash.file_hash(original) == codehash.file_hash(reworded)
    assert codehash.file_hash(original) != codehash.file_hash(changed)


def test_models_are_read_from_their_registration():
    registered = codehash.registered_models()
    assert {"fmlp": "hybridrec.models.fmlp", "linrec": "hybridrec.models.linrec",
            "sasrec": "hybridrec.models.sasrec"}.items() <= registered.items()
    from hybridrec.models import MODELS

    assert set(registered) == set(MODELS)  # the AST reading agrees with the live registry


def test_a_training_job_runs_its_own_model_and_no_other():
    fmlp = set(codehash.code_modules(SCRIPTS / "train.py", "fmlp"))
    linrec = set(codehash.code_modules(SCRIPTS / "train.py", "linrec"))
    assert {"hybridrec.models.fmlp", "hybridrec.training.loop", "hybridrec.jobs.train",
            "hybridrec.evaluation.ranking", "script:train.py"} <= fmlp
    assert "hybridrec.models.linrec" not in fmlp and "hybridrec.models.sasrec" not in fmlp
    # LinRec is SASRec with another attention: SASRec's module is its real dependency
    assert {"hybridrec.models.linrec", "hybridrec.models.sasrec"} <= linrec
    assert "hybridrec.models.fmlp" not in linrec
    assert codehash.code_hash(SCRIPTS / "train.py", "fmlp") \
        != codehash.code_hash(SCRIPTS / "train.py", "linrec")


def test_the_hybrid_stage_runs_no_model_or_training_code():
    fusion = set(codehash.code_modules(SCRIPTS / "hybrid_fusion.py"))
    assert "hybridrec.hybrid.fusion" in fusion
    assert not {m for m in fusion if m.startswith(("hybridrec.models", "hybridrec.training"))}


def _clear_caches():
    for cached in (codehash._parse, codehash.file_hash, codehash.weights_code_hash,
                   codehash.registered_models):
        cached.cache_clear()


def test_bookkeeping_modules_do_not_orphan_checkpoints(tmp_path, monkeypatch):
    before = codehash.weights_code_hash("fmlp")
    package = tmp_path / "hybridrec"
    shutil.copytree(codehash.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codehash, "PACKAGE_ROOT", package)
    for module in ("io.py", "provenance.py", "training/checkpoint.py", "models/layers.py"):
        path = package / module
        path.write_text(path.read_text() + "\n_EDITED = True\n")
        _clear_caches()
        changed = codehash.weights_code_hash("fmlp") != before
        assert changed == (module == "models/layers.py"), module
    _clear_caches()


def test_weights_code_is_the_model_and_the_loop():
    assert codehash.weights_code_hash("fmlp") != codehash.weights_code_hash("linrec")
    closure = codehash.module_closure({"hybridrec.models.fmlp", "hybridrec.training.loop"})
    assert "hybridrec.evaluation.ranking" not in closure  # validation picks epochs, not weights
    assert {"hybridrec.models.layers", "hybridrec.training.batches"} <= closure


def test_an_unknown_model_is_named():
    with pytest.raises(KeyError, match="'nope'"):
        codehash.code_hash(SCRIPTS / "train.py", "nope")


def test_every_script_has_a_hash_from_the_command_line(capsys):
    assert codehash.main([str(SCRIPTS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split("\t")[0] for line in lines}
    assert {"preprocess", "hybrid_fusion", "train[fmlp]", "evaluate[linrec]"} <= names
    assert all(len(line.split("\t")[1]) == 64 for line in lines)
