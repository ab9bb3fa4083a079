"""smtgrad: exact existence questions about the gradients of small neural networks."""

__version__ = "0.1.0"
