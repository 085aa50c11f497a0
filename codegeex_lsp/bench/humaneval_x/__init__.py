"""Offline HumanEval-X: generate completions, execute the hidden tests in a sandbox, report pass@k.

Data flows dataset -> generator -> stops -> execute (sandbox, toolchains) -> metric -> report; `run`
drives it. Nothing here imports torch: a model-backed generator is loaded lazily by `generator`.
"""
