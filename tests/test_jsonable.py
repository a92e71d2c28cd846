import json
import math

import numpy as np

from revopt.jsonable import jsonable


def test_jsonable_turns_numpy_and_non_finite_values_into_what_json_columns_hold():
    # given a model summary as fitting code leaves it
    summary = {
        "auc": np.float64(0.84),
        "counts": np.array([3, 4]),
        "k": np.int64(3),
        "silhouette": {np.int64(2): 0.4, 3: float("nan")},
        "bounds": (1.0, math.inf),
        "when": object,
    }

    # when
    cleaned = jsonable(summary)

    # then plain numbers and lists, non-finite floats as null, keys as strings, and it serialises strictly
    assert cleaned["auc"] == 0.84 and type(cleaned["auc"]) is float
    assert cleaned["counts"] == [3, 4] and type(cleaned["k"]) is int
    assert cleaned["silhouette"] == {"2": 0.4, "3": None}
    assert cleaned["bounds"] == [1.0, None]
    assert cleaned["when"] == str(object)
    json.dumps(cleaned, allow_nan=False)
