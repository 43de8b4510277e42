"""A text-overlap score of descriptions: our own dependency-free one (SQuAD v1.1 token F1), with no metric of the
official code to reproduce (the mask metrics are :mod:`finetune.metrics`)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

from finetune.metrics import MetricInputError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _text_tokens(text: str) -> list[str]:
    """SQuAD normalisation: lower-case, drop ASCII punctuation and articles, split on whitespace."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def text_similarity(pred: str, ref: str) -> float:
    """Token-level F1 between a predicted and a reference description (SQuAD v1.1 F1), in [0, 1].

    Both texts are lower-cased and stripped of punctuation and articles (a/an/the); the score is the
    F1 of the multiset overlap of their tokens. Word order and synonyms are ignored, so treat it as a
    cheap regression signal, not a judge. Two empty texts score 1, one empty text scores 0.
    """
    pred_tokens, ref_tokens = _text_tokens(pred), _text_tokens(ref)
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    n_same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if n_same == 0:
        return 0.0
    precision, recall = n_same / len(pred_tokens), n_same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def corpus_text_score(pairs: Iterable[tuple[str, str]]) -> float:
    """Mean :func:`text_similarity` over (pred, ref) pairs; raises MetricInputError when there are none."""
    scores = [text_similarity(pred, ref) for pred, ref in pairs]
    if not scores:
        raise MetricInputError("corpus_text_score needs at least 1 (pred, ref) pair, got 0")
    return sum(scores) / len(scores)
