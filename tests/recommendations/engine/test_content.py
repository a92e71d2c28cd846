import numpy as np

from recommendations.engine.content import content_matrix, similar_content
from tests.recommendations.engine.data import make_items


def test_content_neighbours_share_category_brand_and_words():
    # given
    items = make_items(
        5,
        titles=["Alpine tent 2p", "Alpine tent 3p", "Trail running shoe", "Road running shoe", "Mug"],
        brands=["Acme", "Acme", "Zoom", "Zoom", ""],
        categories=[1, 1, 2, 2, 3],
    )

    # when
    neighbours = similar_content(items, k=3)

    # then
    assert neighbours[0][0][0] == 1
    assert neighbours[2][0][0] == 3
    assert all(other != 4 for other, _ in neighbours[0])


def test_attributes_and_the_category_path_make_items_similar_without_shared_words():
    # given: no title words in common; items 0 and 1 share a colour and a parent category
    items = make_items(3, titles=["Alpha", "Bravo", "Charlie"], categories=[-1, -1, -1])
    items.category_path[:] = ["Outdoor > Tents", "Outdoor > Bags", "Kitchen > Mugs"]
    items.attributes[:] = [{"colour": "red"}, {"colour": "red"}, {"colour": "blue"}]

    # when
    neighbours = similar_content(items, k=2)

    # then
    assert [other for other, _ in neighbours[0]] == [1]


def test_content_vectors_have_unit_norm_or_are_zero_without_content():
    # given
    items = make_items(2, titles=["Tent", ""], categories=[1, -1])

    # when
    norms = np.sqrt(np.asarray(content_matrix(items).multiply(content_matrix(items)).sum(axis=1)).ravel())

    # then
    assert np.allclose(norms, [1.0, 0.0])
