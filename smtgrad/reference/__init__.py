"""Trusted code: the exact reference network (:mod:`.network`), witnesses
(:mod:`.witness`), the verifier (:mod:`.verify`) and rigorous ball arithmetic with
the Krawczyk certificate (:mod:`.intervals`).

A bug in the encoder or a search must surface here as a rejected witness, so
nothing in this package imports the encoding, the methods, a backend or a solver.
"""
