"""The other baseline of the recommendation benchmark: what a user could build instead in fifty
lines, a FastAPI app that asks implicit's ALS for every request (no cache, nothing precomputed).

It trains at start on the MovieLens ratings, or on the synthetic shop in the directory named by
``ALS_SHOP`` (every item event of a person, as the offline protocol reads it), with the tuned
configuration of the offline evaluation (``../shared/eval``), then answers
``GET /v1/users/{id}/recommendations?n=10`` with the person's ALS top n, items they rated left
out, in the shape of persona's answer. It runs under uvicorn as
`persona serve --workers 1` does (one process), on the event loop like persona's answers.

    python -m uvicorn als_app:app --port 8002
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from implicit.cpu.als import AlternatingLeastSquares
from scipy import sparse

from persona.recommend.evaluation import movielens, read_workload

FACTORS, REGULARIZATION, ALPHA, ITERATIONS = 128, 10.0, 1.0, 15

shop = os.environ.get("ALS_SHOP")
frame = read_workload(Path(shop)) if shop else movielens()
people = frame["person"].astype(str)
users = {u: i for i, u in enumerate(sorted(people.unique()))}
items = sorted(frame["item"].astype(str).unique())
item_index = {m: i for i, m in enumerate(items)}
matrix = sparse.csr_matrix(
    (
        np.ones(len(frame), dtype=np.float32),
        (people.map(users).to_numpy(), frame["item"].astype(str).map(item_index).to_numpy()),
    ),
    shape=(len(users), len(items)),
)
matrix.sum_duplicates()
model = AlternatingLeastSquares(
    factors=FACTORS,
    regularization=REGULARIZATION,
    alpha=ALPHA,
    iterations=ITERATIONS,
    random_state=7,
)
model.fit(matrix, show_progress=False)

app = FastAPI()


@app.get("/v1/users/{user_id}/recommendations")
async def recommendations(user_id: str, n: int = 10) -> Any:
    row = users.get(user_id)
    if row is None:
        raise HTTPException(404, "unknown person")
    ids, scores = model.recommend(row, matrix[row], N=n, filter_already_liked_items=True)
    return {
        "user_id": user_id,
        "items": [
            {"item_id": items[i], "score": float(s), "sources": ["als"]}
            for i, s in zip(ids, scores, strict=True)
        ],
        "source": "als",
    }
