"""Content similarity over title, description, category, brand and attributes.

Words are TF-IDF weighted; the category path, the brand and each attribute value are tokens of their
own, so two tents of the same brand are close even when their descriptions share no word. Works for
items nobody has interacted with yet (new items, new shops).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recommendations.engine.dataset import Items

# Relative weight of each block of the item vector.
WORDS_WEIGHT = 1.0
CATEGORY_WEIGHT = 1.0
BRAND_WEIGHT = 0.6
ATTRIBUTES_WEIGHT = 0.6
DESCRIPTION_CHARS = 2_000
BATCH_ROWS = 1_024


def _token_block(tokens_per_item: list[list[str]]) -> sp.csr_matrix:
    """Items × distinct tokens, each item's row L2-normalised (an item with no token stays zero)."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    for row, tokens in enumerate(tokens_per_item):
        for token in set(tokens):
            rows.append(row)
            columns.append(vocabulary.setdefault(token, len(vocabulary)))
    block = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(tokens_per_item), max(len(vocabulary), 1)))
    # Rare tokens say more than common ones (a brand shared by 3 items vs a category of 3,000).
    document_frequency = np.asarray((block > 0).sum(axis=0)).ravel()
    idf = np.log((1.0 + len(tokens_per_item)) / (1.0 + document_frequency)) + 1.0
    return normalize(block @ sp.diags(idf), norm="l2", axis=1)


def _category_tokens(path: str, category: int) -> list[str]:
    parts = [part.strip().lower() for part in path.split(">") if part.strip()]
    tokens = [f"path:{' > '.join(parts[: depth + 1])}" for depth in range(len(parts))]
    if category >= 0:
        tokens.append(f"category:{category}")
    return tokens


def _attribute_tokens(attributes: dict) -> list[str]:
    tokens = []
    for key, value in attributes.items():
        values = value if isinstance(value, list | tuple) else [value]
        tokens.extend(f"{str(key).lower()}={str(item).strip().lower()}" for item in values if str(item).strip())
    return tokens


def _words_block(items: Items) -> sp.csr_matrix:
    texts = [
        f"{title} {title} {description[:DESCRIPTION_CHARS]}"
        for title, description in zip(items.title, items.description, strict=True)
    ]
    if not any(text.strip() for text in texts):
        return sp.csr_matrix((len(items), 1))
    vectorizer = TfidfVectorizer(min_df=1, max_features=50_000, sublinear_tf=True, stop_words="english")
    try:
        return sp.csr_matrix(vectorizer.fit_transform(texts))
    except ValueError:  # only stop words
        return sp.csr_matrix((len(items), 1))


def content_matrix(items: Items) -> sp.csr_matrix:
    """Items × content features, rows of unit norm (zero for an item with no content at all)."""
    blocks = [
        WORDS_WEIGHT * _words_block(items),
        CATEGORY_WEIGHT
        * _token_block(
            [
                _category_tokens(path, int(category))
                for path, category in zip(items.category_path, items.category, strict=True)
            ]
        ),
        BRAND_WEIGHT
        * _token_block([[f"brand:{brand.strip().lower()}"] if brand.strip() else [] for brand in items.brand]),
        ATTRIBUTES_WEIGHT * _token_block([_attribute_tokens(attributes or {}) for attributes in items.attributes]),
    ]
    return normalize(sp.hstack(blocks).tocsr(), norm="l2", axis=1)


def similar_content(items: Items, *, k: int, min_score: float = 0.05) -> dict[int, list[tuple[int, float]]]:
    """Item index -> its k most similar items by cosine of their content vectors."""
    vectors = content_matrix(items)
    transposed = vectors.T.tocsr()
    result: dict[int, list[tuple[int, float]]] = {}
    for start in range(0, len(items), BATCH_ROWS):
        stop = min(start + BATCH_ROWS, len(items))
        similarity = (vectors[start:stop] @ transposed).toarray()
        similarity[np.arange(stop - start), np.arange(start, stop)] = 0.0
        similarity[similarity < min_score] = 0.0
        take = min(k, similarity.shape[1])
        candidates = np.argpartition(-similarity, take - 1, axis=1)[:, :take]
        for offset in range(stop - start):
            columns = candidates[offset]
            scores = similarity[offset, columns]
            keep = scores > 0
            columns, scores = columns[keep], scores[keep]
            order = np.lexsort((columns, -scores))
            if len(order):
                result[start + offset] = [(int(columns[i]), float(scores[i])) for i in order]
    return result
