import numpy as np

from recommendations.engine.dataset import KIND_INDEX
from recommendations.engine.movielens import load_movielens


def test_movielens_keeps_ratings_of_four_stars_and_more_as_purchases():
    # when
    data = load_movielens()
    five_stars = load_movielens(min_rating=5.0)

    # then: the dslabs sample has 671 users, 9,066 movies, 51,568 ratings of 4 stars or more
    assert (len(data.users), len(data.items), len(data.interactions)) == (671, 9066, 51568)
    assert len(five_stars.interactions) == 15095
    assert (data.interactions.kind == KIND_INDEX["purchase"]).all()
    assert np.diff(data.interactions.timestamp).min() >= 0
    assert data.now > data.interactions.timestamp.max()


def test_movielens_movies_carry_their_first_genre_as_category_and_genres_as_attributes():
    # when
    data = load_movielens()

    # then
    index = int(np.searchsorted(data.items.ids, 1))  # Toy Story
    assert data.items.title[index].startswith("Toy Story")
    assert data.items.category_path[index] == "Adventure"
    assert "Animation" in data.items.attributes[index]["genres"]
    assert data.items.attributes[index]["year"] == 1995
