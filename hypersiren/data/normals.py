"""Normals of a point cloud that has none: k-nearest-neighbour PCA, oriented consistently and outwards.

Direction: the eigenvector of the smallest eigenvalue of the covariance of each point's ``neighbours`` nearest
points (itself included): the normal of the least-squares plane through them.
Orientation (Hoppe et al. 1992): PCA leaves the sign open. Neighbouring normals of a smooth surface are nearly
parallel, so the signs are propagated along the minimum spanning tree of the k-nearest-neighbour graph with
edge cost 1 - |n_i . n_j| (smooth regions first, creases last), flipping a normal that points against its parent's.
Each connected piece of the graph starts from its point farthest from the piece's centroid, whose outward
normal points away from the centroid.

Limits: parts thinner than the point spacing (the neighbours of a point then include the far side), sharp
creases sampled more coarsely than ``neighbours``, and open surfaces (no inside: the side facing away from the
centroid at the outermost point wins) can get flipped patches. Give normals in the file when they are known.
"""
from __future__ import annotations

import numpy as np

NEIGHBOURS = 16
CHUNK = 65536  # points per batch of 3 x 3 eigenproblems (bounds the (chunk, k, 3) neighbourhood array)


def estimate_normals(points: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Unit normals (N, 3) of points (N, 3) sampled from surfaces, N > neighbours; see the module docstring."""
    from scipy.spatial import cKDTree

    _, index = cKDTree(points).query(points, neighbours + 1)  # (N, k + 1), nearest first: the point itself
    normals = np.empty_like(points, dtype=np.float64)
    for start in range(0, len(points), CHUNK):
        near = points[index[start : start + CHUNK]]
        centred = near - near.mean(axis=1, keepdims=True)
        _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", centred, centred))  # ascending eigenvalues
        normals[start : start + CHUNK] = vectors[:, :, 0]
    return normals * _orientation(points, normals, index[:, 1:])[:, None]


def _orientation(points: np.ndarray, normals: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Signs (N,) of +-1 that make ``normals`` consistent along the minimum spanning tree of the neighbour
    graph (N, k) and outward at each piece's outermost point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    cost = 1 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[neighbours.ravel()])) + 1e-9  # 0 = no edge
    graph = coo_matrix((cost, (rows, neighbours.ravel())), shape=(n, n)).tocsr()
    pieces, label = connected_components(graph, directed=False)
    centroid = np.stack([np.bincount(label, points[:, i], pieces) for i in range(3)], 1)
    centroid /= np.bincount(label, minlength=pieces)[:, None]
    outward = points - centroid[label]
    by_radius = np.lexsort((np.linalg.norm(outward, axis=1), label))  # by piece, farthest from its centroid last
    seeds = by_radius[np.r_[np.flatnonzero(np.diff(label[by_radius])), n - 1]]
    # one tree for all pieces: a virtual root (node n) joined to every piece's seed
    tree = minimum_spanning_tree(graph).tocoo()
    tree = coo_matrix((np.r_[tree.data, np.ones(pieces)], (np.r_[tree.row, np.full(pieces, n)], np.r_[tree.col, seeds])),
                      shape=(n + 1, n + 1))
    order, parent = breadth_first_order(tree.tocsr(), n, directed=False, return_predecessors=True)
    order = order[1:]
    towards = np.where(parent[order, None] == n, outward[order], normals[np.minimum(parent[order], n - 1)])
    flip = np.where(np.einsum("ij,ij->i", normals[order], towards) < 0, -1, 1).tolist()
    sign, parents = [1] * (n + 1), parent.tolist()
    for node, relative in zip(order.tolist(), flip):
        sign[node] = sign[parents[node]] * relative
    return np.asarray(sign[:n], dtype=np.float64)
