"""The batch-scoring job (``aigc recommend score``): top-k items per user for many users, resumably.

* :mod:`.job`: chunks, the work directory, assembly of the output file and DB rows (:func:`run_batch`);
* :mod:`.engines`: where chunks are scored, this process or Ray actors (the same code either way);
* :mod:`.scorers`: what is scored with, picked by ``--model`` (a saved model, or the synthetic catalogue);
* :mod:`.synthetic`: the seeded synthetic catalogue of the throughput benchmark.
"""
