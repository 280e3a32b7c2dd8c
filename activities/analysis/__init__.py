"""Metric analysis: built-in metrics from the router of a target, or PromQL asked of Prometheus."""
