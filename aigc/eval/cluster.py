"""Clustering against known labels: unsupervised accuracy and normalised mutual information.

Both take two integer arrays of the same length (the true labels, the cluster ids); the ids are
arbitrary names, so both are invariant to renaming the clusters. Accuracy uses the best one-to-one
matching of clusters to labels (Hungarian method; unmatched clusters count as wrong), the
protocol of DEC and VaDE; NMI uses the arithmetic mean of the two entropies, sklearn's default.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def contingency(labels, clusters) -> np.ndarray:
    """Counts n[i, j] of points with the i-th distinct cluster id and the j-th distinct label."""
    labels = np.asarray(labels).reshape(-1)
    clusters = np.asarray(clusters).reshape(-1)
    if labels.shape != clusters.shape:
        raise ValueError(f"got {labels.size} labels and {clusters.size} cluster ids; they must match")
    if labels.size == 0:
        raise ValueError("no points to compare")
    for name, a in (("labels", labels), ("clusters", clusters)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integers")
    _, li = np.unique(labels, return_inverse=True)
    _, ci = np.unique(clusters, return_inverse=True)
    table = np.zeros((ci.max() + 1, li.max() + 1), dtype=np.int64)
    np.add.at(table, (ci, li), 1)
    return table


def cluster_accuracy(labels, clusters) -> float:
    """max over one-to-one maps m of mean(labels == m(clusters))."""
    table = contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels, clusters) -> float:
    """I(labels; clusters) / mean(H(labels), H(clusters)), in [0, 1]."""
    table = contingency(labels, clusters).astype(np.float64)
    if table.shape == (1, 1):
        return 1.0   # one cluster for one class: the two partitions are the same
    n = table.sum()
    pij = table / n
    pi = pij.sum(1, keepdims=True)
    pj = pij.sum(0, keepdims=True)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])).sum())
    h = 0.5 * (_entropy(table.sum(1)) + _entropy(table.sum(0)))
    return max(0.0, mi / h) if h > 0 and mi > 0 else 0.0
