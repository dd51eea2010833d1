"""How aligned two sets of paired vectors are: retrieval top-1 both ways, linear CKA, and token norms.

Row ``i`` of ``a`` and row ``i`` of ``b`` are a pair (a video and one of its frames, say). The measures follow
the sources in the alignment reference note:

- **Retrieval top-1** ranks the ``n`` candidates of the other set by cosine similarity (after removing each
  set's batch mean, see :func:`retrieval_top1`) and counts how often the true partner comes first. Chance is
  ``1 / n``, so compare only at equal ``n``.
- **Linear CKA** (Kornblith et al., arXiv 1905.00414): with column-centred ``X`` and ``Y``,
  ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``. 1 for spaces equal up to rotation and isotropic scale. The
  biased estimator is inflated at small ``n`` and large ``d``, so :func:`alignment_scores` also reports it on
  row-shuffled pairs (the floor at this ``n``) and on L2-normalised rows (high-norm outliers dominate it).
- **Norms**: visual tokens after the projector against the LLM's input embedding rows (Li et al.,
  arXiv 2512.08374: projected tokens much larger than text tokens train slowly in pre-norm LLMs).

Legend: ``n`` pairs, ``d`` width, ``k`` tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def retrieval_top1(a: torch.Tensor, b: torch.Tensor, center: bool = True) -> tuple[float, float]:
    """Top-1 retrieval by cosine: ``(a -> b, b -> a)``, each the share of rows whose partner ranks first.

    Args:
        a, b: ``[n, d]`` paired rows (the same width).
        center: subtract each set's mean over the batch first. Pooled tower tokens share one large common
            direction (the "cone", Liang et al., arXiv 2203.02053: mean cosine about 0.99 for random towers),
            and each set its own offset (the modality gap); uncentred, one candidate wins every query and
            retrieval reads chance whatever the alignment.
    """
    _check_pairs(a, b)
    a, b = a.double(), b.double()
    if center:
        a, b = a - a.mean(dim=0, keepdim=True), b - b.mean(dim=0, keepdim=True)
    similarity = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T  # [n, n]
    truth = torch.arange(a.shape[0])
    a_to_b = (similarity.argmax(dim=1) == truth).double().mean().item()
    b_to_a = (similarity.argmax(dim=0) == truth).double().mean().item()
    return a_to_b, b_to_a


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of ``[n, d1]`` and ``[n, d2]`` paired rows (widths may differ); 0 when one side is constant."""
    _check_pairs(x, y, same_width=False)
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    y = y.double() - y.double().mean(dim=0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    scale = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return 0.0 if scale.item() == 0 else (cross / scale).item()


def norm_summary(vectors: torch.Tensor) -> dict[str, float]:
    """Mean and 99th percentile of the L2 norms of ``[..., d]`` vectors (tokens, embedding rows)."""
    norms = vectors.detach().double().reshape(-1, vectors.shape[-1]).norm(dim=-1)
    return {"mean": norms.mean().item(), "p99": torch.quantile(norms, 0.99).item()}


def alignment_scores(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Every pair measure of ``[n, d]`` rows ``a`` and ``b``, with the chance and shuffled floors.

    Returns:
        ``retrieval_a_to_b``, ``retrieval_b_to_a`` (centred), the same ``_uncentered``, ``retrieval_chance``
        (``1/n``), ``cka``, ``cka_normalized`` (rows L2-normalised first) and ``cka_shuffled`` (``b``'s rows
        permuted: the biased estimator's floor).
    """
    a_to_b, b_to_a = retrieval_top1(a, b)
    raw_a_to_b, raw_b_to_a = retrieval_top1(a, b, center=False)
    generator = torch.Generator().manual_seed(seed)
    shuffled = b[torch.randperm(b.shape[0], generator=generator)]
    return {
        "retrieval_a_to_b": a_to_b,
        "retrieval_b_to_a": b_to_a,
        "retrieval_a_to_b_uncentered": raw_a_to_b,
        "retrieval_b_to_a_uncentered": raw_b_to_a,
        "retrieval_chance": 1.0 / a.shape[0],
        "cka": linear_cka(a, b),
        "cka_normalized": linear_cka(F.normalize(a.double(), dim=-1), F.normalize(b.double(), dim=-1)),
        "cka_shuffled": linear_cka(a, shuffled),
    }


def _check_pairs(a: torch.Tensor, b: torch.Tensor, same_width: bool = True) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or a.shape[0] < 2:
        raise ValueError(f"need two [n, d] tensors of the same n >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    if same_width and a.shape[1] != b.shape[1]:
        raise ValueError(f"retrieval compares rows of one width, got {a.shape[1]} and {b.shape[1]}")
