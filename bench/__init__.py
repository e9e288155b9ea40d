"""The benchmark harness: measures the goodput of an OpenAI-compatible (vLLM) endpoint.

Layering: ``bench`` imports ``oracle`` only; it speaks vLLM's HTTP protocol and never imports
vllm itself.
"""
