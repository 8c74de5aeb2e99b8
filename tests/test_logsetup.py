"""A rule's log: the package's records at INFO, other libraries' from WARNING up."""

from __future__ import annotations

import logging
import sys

import pytest

from hybridrec.logsetup import configure_logging


@pytest.fixture
def restored_logging():
    root, package = logging.getLogger(), logging.getLogger("hybridrec")
    saved = (list(root.handlers), root.level, package.level, sys.excepthook)
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    package.setLevel(saved[2])
    sys.excepthook = saved[3]


def test_the_log_keeps_the_packages_info_and_other_libraries_warnings(tmp_path, restored_logging):
    log_file = tmp_path / "logs" / "rule.log"
    configure_logging(log_file)
    logging.getLogger("hybridrec.jobs.shap").info("selected three features")
    logging.getLogger("shap").info("phi = array([0.1, 0.2])")
    logging.getLogger("shap").warning("a real problem")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert "INFO hybridrec.jobs.shap: selected three features" in text
    assert "phi" not in text
    assert "WARNING shap: a real problem" in text
