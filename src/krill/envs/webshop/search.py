"""BM25 product search (bm25s), standing in for WebShop's Lucene index.

Indexed text per product follows `search_engine/convert_product_file_format.py`: title,
description, first bullet point and the option text ("color: red, blue, and size: small"), plus the
attributes. Like Lucene, only documents sharing a term with the query are returned (top 50).
The index is built once per catalogue and cached in memory for the process.
"""

from __future__ import annotations

import re

import bm25s
import numpy as np

from krill.envs.webshop.catalogue import Catalogue, Product

SEARCH_RETURN_N = 50  # engine.py
_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with i me my we need want looking find would like help im i'm am some".split()
)
_cache: dict[tuple[int, int], SearchEngine] = {}


def tokenize(text: str) -> list[str]:
    """Lowercase words minus stopwords, with a light plural stemmer (Lucene's analyzer stems too).

    >>> tokenize("I need Running Shoes for men")
    ['running', 'shoe', 'men']
    """
    out = []
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in _STOPWORDS:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def product_document(p: Product) -> str:
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in p.options.items())
    return " ".join([p.title, p.description, p.bullets[0] if p.bullets else "", option_text, *p.attributes])


class SearchEngine:
    """BM25 over one catalogue; `search(query)` returns up to 50 products, best first."""

    def __init__(self, catalogue: Catalogue):
        self.products = catalogue.products
        # pyserini LuceneSearcher defaults (WebShop's search engine): k1=0.9, b=0.4
        self.retriever = bm25s.BM25(k1=0.9, b=0.4)
        corpus = [tokenize(product_document(p)) for p in self.products]
        self.retriever.index(corpus, show_progress=False)
        self.vocab = self.retriever.vocab_dict

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[Product]:
        tokens = [t for t in tokenize(query) if t in self.vocab]
        if not tokens:
            return []
        k = min(k, len(self.products))
        docs, scores = self.retriever.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        keep = scores[0] > 0
        return [self.products[int(i)] for i in np.asarray(docs[0])[keep]]


def get_search_engine(catalogue: Catalogue) -> SearchEngine:
    """The cached engine for this catalogue (keyed by its size and seed)."""
    key = (len(catalogue), catalogue.seed)
    if key not in _cache:
        _cache[key] = SearchEngine(catalogue)
    return _cache[key]
