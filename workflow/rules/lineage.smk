# Lineage: every job's params carry a digest of the settings and code of everything upstream of
# it, so no output can stand for settings it was not made with.
#
# Snakemake reruns a job when its own params or code change, and then everything downstream of
# it. But a job that fails or is killed has had its outputs deleted, and Snakemake does not
# rebuild a missing intermediate whose readers are up to date: a setting changed upstream of a
# failed job would then never reach the readers, and a later run would report the old results as
# done. With the digest of everything upstream among a reader's own params, the changed setting
# changes the reader's params too, so the reader reruns and asks for its inputs again.
#
# The digest is computed from the workflow's own rules: the job that writes each input (the rule
# whose output pattern matches it, and its wildcards), that job's params (config values and code
# hash) and, recursively, the digests of its own inputs. Files no rule writes (raw data, item
# text, published weights) enter through the params that name them (path and checksum). Weights
# taken from a results bundle (import_weights) are also named in every downstream job's
# provenance record, with their sha256.
import hashlib
import json
from functools import cmp_to_key

from snakemake.iocontainers import Wildcards

from hybridrec.plain import plain

_LINEAGE_CACHE = {}
_IMPORTS_CACHE = {}


def _job_wildcards(wildcards):
    return Wildcards(fromdict=dict(wildcards))


def _producer(path):
    """``(step, wildcards)`` of the job that writes ``path``, or ``None`` for a source file.
    Where several rules could (import_weights and train), the one Snakemake picks: the first
    by the workflow's ruleorder (it has no public accessor)."""
    steps = [step for step in workflow.rules if step.is_producer(path)]
    if not steps:
        return None
    first = min(steps, key=cmp_to_key(lambda a, b: -workflow._ruleorder.compare(a, b)))
    return first, dict(first.get_wildcards(path))


def _own_params(step, wildcards):
    """A job's params as plain values (functions of the wildcards evaluated), less its
    ``upstream`` digest (its inputs' lineage is walked instead)."""
    values = {}
    for name, value in step.params.items():
        if name == "upstream":
            continue
        values[name] = value(_job_wildcards(wildcards)) if callable(value) else value
    return plain(values)


def _inputs(step, wildcards):
    files = step.expand_input(_job_wildcards(wildcards))[0]
    return sorted(dict.fromkeys(str(f) for f in files))


def _digest(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def job_lineage(step, wildcards):
    """Digest of one job's params and of the lineage of every job that writes its inputs."""
    key = (step.name, tuple(sorted(wildcards.items())))
    if key not in _LINEAGE_CACHE:
        _LINEAGE_CACHE[key] = _digest(
            [step.name, _own_params(step, wildcards), inputs_lineage(step, wildcards)]
        )
    return _LINEAGE_CACHE[key]


def inputs_lineage(step, wildcards):
    """``{input path: lineage of the job that writes it}`` (source files left out)."""
    found = {}
    for path in _inputs(step, wildcards):
        producer = _producer(path)
        if producer is not None:
            found[path] = job_lineage(*producer)
    return found


def job_imports(step, wildcards):
    """The published weights (``path sha256:...``) a job's inputs descend from."""
    key = (step.name, tuple(sorted(wildcards.items())))
    if key not in _IMPORTS_CACHE:
        found = set()
        if step.name == "import_weights":
            source = _own_params(step, wildcards)["source"]
            found.add(f"{source['path']} sha256:{source['sha256']}")
        for path in _inputs(step, wildcards):
            producer = _producer(path)
            if producer is not None:
                found |= job_imports(*producer)
        _IMPORTS_CACHE[key] = frozenset(found)
    return _IMPORTS_CACHE[key]


def upstream(rule_name):
    """The ``upstream`` param of a rule: one digest of everything upstream of its job, and the
    published weights it descends from. (The rule is looked up by its final name, prefixed
    where the workflow is used as a module.)"""
    final_name = workflow.modifier.modify_rulename(rule_name)

    def param(wildcards):
        step, values = workflow.get_rule(final_name), dict(wildcards.items())
        return {"digest": _digest(inputs_lineage(step, values)),
                "weights_from": sorted(job_imports(step, values))}

    return param
