"""The SMT encodings: spec -> pysmt constraints (:mod:`.builder`), encoding modes
(:mod:`.modes`, light: no pysmt) and SMT-LIB 2 export (:mod:`.smtlib`).

Nothing is imported here, so that ``smtgrad.encoding.modes`` stays free of pysmt.
May import the spec, the numbers and the activations; never a solver.
"""
