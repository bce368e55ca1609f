"""Training and evaluation of diffusion code models: corpus, tokenizer, examples, the loop, held-out scores.

Serving never imports this package: `mercury-engine train` and `mercury-engine eval` register from here.
"""
