"""Tree-based gates (paper Section V-C, l.435, "Tree-based Alpha Prediction"): a random forest
or gradient-boosted trees whose predicted class probabilities are the branch weights (alpha for
two branches).

scikit-learn fits them (``RandomForestClassifier``, ``HistGradientBoostingClassifier``); the
fitted trees are then kept as plain arrays (:class:`TreeGate`), so the gate file holds numbers,
not pickled code, and the stored gate predicts what the search scored, bit for bit.

- Soft labels: each row enters once per branch with a positive label share, weighted by that
  share times the class weight (``pos_weight`` on branch 0, as the MLP's loss). For the boosted
  trees' log loss this is exactly the soft-label loss.
- No feature standardisation (trees split on raw values) and no epochs: the boosted trees'
  iteration count is searched like the MLP's epochs, and the lowest-held-out-loss rule picks
  among trials only.
- ``HistGradientBoostingClassifier`` runs without its own early stopping (it would hold out
  rows of its own), so every trial sees the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

FOREST, BOOSTING = "random_forest", "gradient_boosting"


@dataclass(frozen=True)
class TreeGate:
    """Trees as arrays over all their nodes (N of them); predicts in NumPy float64.

    A forest's output is the mean of its trees' class probabilities; boosted trees' is the
    baseline plus the sum of their raw scores, through a sigmoid (two classes: one score, that
    of ``classes[1]``) or a softmax.
    """

    feature_names: tuple[str, ...]
    n_branches: int
    kind: str  # FOREST or BOOSTING
    classes: np.ndarray  # (C,) the branch of each output class
    roots: np.ndarray  # (n_trees,) each tree's first node
    feature: np.ndarray  # (N,) the split feature, -1 at a leaf
    threshold: np.ndarray  # (N,) a row goes left when its feature is <= this
    left: np.ndarray  # (N,) children, as node indices
    right: np.ndarray  # (N,)
    value: np.ndarray  # (N, O) leaf output: class probabilities (forest) or raw scores
    baseline: np.ndarray  # (O,) boosting's initial raw score (zeros for a forest)

    def branch_weights(self, features: np.ndarray) -> np.ndarray:
        """Per-row branch weights ``(n, B)`` summing to 1; column 0 is the paper's alpha."""
        x = np.asarray(features, dtype=np.float64)
        if self.kind == FOREST:  # scikit-learn's trees compare float32 features
            x = x.astype(np.float32).astype(np.float64)
        out = self.value[self._leaves(x)]  # (n, n_trees, O)
        if self.kind == FOREST:
            proba = out.mean(axis=1)
        else:
            raw = self.baseline + out.sum(axis=1)  # (n, O)
            if raw.shape[1] == 1:  # sigmoid, without overflow: p(classes[0]), p(classes[1])
                first = 0.5 * (1.0 + np.tanh(-0.5 * raw[:, 0]))
                proba = np.stack([first, 1.0 - first], axis=1)
            else:
                e = np.exp(raw - raw.max(axis=1, keepdims=True))
                proba = e / e.sum(axis=1, keepdims=True)
        weights = np.zeros((len(x), self.n_branches))
        weights[:, self.classes] = proba
        return weights

    def _leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree, (n, n_trees)."""
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            inner = self.feature[node] >= 0
            if not inner.any():
                return node
            go_left = x[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)


def fit_tree_gate(kind: str, features: np.ndarray, labels: np.ndarray,
                  settings: Mapping[str, float], pos_weight: float, seed: int,
                  feature_names: Sequence[str]) -> TreeGate:
    """Fit one tree gate on raw ``features`` (n, F) and soft ``labels`` (n, B).

    ``settings``: the forest's ``n_estimators``, ``max_depth``, ``min_samples_leaf``, or the
    boosted trees' ``learning_rate``, ``max_iter``, ``max_leaf_nodes``, ``min_samples_leaf``
    (what the search varies). ``seed`` seeds the forest's bootstrap and feature draws.
    """
    x, y, weight = _rows_per_branch(np.asarray(features, dtype=np.float64), labels, pos_weight)
    state = seed % 2**32
    names, n_branches = tuple(feature_names), labels.shape[1]
    if kind == FOREST:
        forest = RandomForestClassifier(n_estimators=int(settings["n_estimators"]),
                                        max_depth=int(settings["max_depth"]),
                                        min_samples_leaf=int(settings["min_samples_leaf"]),
                                        random_state=state, n_jobs=1)
        forest.fit(x, y, sample_weight=weight)
        trees = [_tree_arrays(e.tree_.feature, e.tree_.threshold, e.tree_.children_left,
                              e.tree_.children_right, e.tree_.value[:, 0, :])
                 for e in forest.estimators_]
        return _gate(names, n_branches, FOREST, forest.classes_, trees,
                     np.zeros(len(forest.classes_)))
    if kind == BOOSTING:
        boosted = HistGradientBoostingClassifier(
            learning_rate=float(settings["learning_rate"]), max_iter=int(settings["max_iter"]),
            max_leaf_nodes=int(settings["max_leaf_nodes"]),
            min_samples_leaf=int(settings["min_samples_leaf"]), early_stopping=False,
            random_state=state)
        boosted.fit(x, y, sample_weight=weight)
        # (iterations x outputs) trees; output o of iteration i is predictors[i][o]
        outputs = boosted.n_trees_per_iteration_
        trees = []
        for iteration in boosted._predictors:  # noqa: SLF001 (no public access to the trees)
            for o, predictor in enumerate(iteration):
                nodes = predictor.nodes
                value = np.zeros((len(nodes), outputs))
                value[:, o] = nodes["value"]
                trees.append(_tree_arrays(np.where(nodes["is_leaf"], -1, nodes["feature_idx"]),
                                          nodes["num_threshold"], nodes["left"], nodes["right"],
                                          value))
        return _gate(names, n_branches, BOOSTING, boosted.classes_, trees,
                     np.asarray(boosted._baseline_prediction, dtype=np.float64).reshape(-1))
    raise ValueError(f"unknown tree gate {kind!r}; known: {FOREST}, {BOOSTING}")


def _rows_per_branch(x: np.ndarray, labels: np.ndarray,
                     pos_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row once per branch with a positive label share: features, branch, weight."""
    row, branch = np.nonzero(labels > 0)
    class_weight = np.where(branch == 0, pos_weight, 1.0)
    return x[row], branch, labels[row, branch] * class_weight


def _tree_arrays(feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                 right: np.ndarray, value: np.ndarray) -> dict[str, np.ndarray]:
    return {"feature": np.asarray(feature, dtype=np.int64),
            "threshold": np.asarray(threshold, dtype=np.float64),
            "left": np.asarray(left, dtype=np.int64), "right": np.asarray(right, dtype=np.int64),
            "value": np.asarray(value, dtype=np.float64)}


def _gate(feature_names: tuple[str, ...], n_branches: int, kind: str, classes: np.ndarray,
          trees: Sequence[dict[str, np.ndarray]], baseline: np.ndarray) -> TreeGate:
    """Trees side by side: node indices shifted by each tree's offset; leaves get feature -1."""
    sizes = np.array([len(t["feature"]) for t in trees])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    feature = np.concatenate([t["feature"] for t in trees])
    leaf = feature < 0
    return TreeGate(
        feature_names, n_branches, kind, np.asarray(classes, dtype=np.int64), offsets,
        np.where(leaf, -1, feature),
        np.concatenate([t["threshold"] for t in trees]),
        np.where(leaf, -1, np.concatenate([t["left"] + o for t, o in zip(trees, offsets,
                                                                         strict=True)])),
        np.where(leaf, -1, np.concatenate([t["right"] + o for t, o in zip(trees, offsets,
                                                                          strict=True)])),
        np.concatenate([t["value"] for t in trees]), baseline)
