"""Recommendations: candidate sources, filters, a learned ranker, reranking, evaluation."""
