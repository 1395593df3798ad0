"""What a run keeps in its workdir, and how it keeps it safe: one live run
at a time (`lock`), every start and what it may change on resume
(`history`), verified train-state checkpoints (`checkpoints`), what a
result was made with (`provenance`), and its TensorBoard scalars read back
(`events`)."""
