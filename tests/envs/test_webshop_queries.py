"""WebShop search queries from the instruction's own words (what constrained decoding offers for search[...])."""

import doctest

from krill.envs.webshop import queries
from krill.envs.webshop.queries import search_queries


def test_queries_doctest_and_cap():
    assert doctest.testmod(queries).failed == 0
    got = search_queries(
        "find me a red cotton t-shirt for men with short sleeves, price lower than 30 dollars", n=2
    )
    assert got == [
        "find me a red cotton t-shirt for men with short sleeves",
        "red cotton t-shirt men short sleeves",
    ]
