"""The one generation engine: prefill, KV cache, decoding steps, sampling, stop strings, streaming, and rows that
join and leave a running batch (docs/generation.md). It works on token ids and media tensors; ``lvlm.inference``
turns questions into prompts for it and ``LVLMModule.predict_step`` runs it on a prediction batch.
"""
