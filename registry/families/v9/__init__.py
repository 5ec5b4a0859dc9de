"""The v9 model family: WAV2VEC features -> a Keras classifier -> emotion classes.

One job per module:

- `family`: `V9Family` (ingest checks, load) and `LoadedModel`;
- `contract`: what the network takes and gives, derived from its stored graph;
- `inference`: the network rebuilt from the file's graph (`keras_graph`), and `predict`;
- `artifacts`: the labels/mean/std files, read without unpickling, and the cross-file checks;
- `architecture`: the network `modelreg train` trains (hyper-parameters and `build_model`);
- `data`: a directory of `.npz` utterances, checked, plus `resolve_data_dir`;
- `preprocessing`: split, train-only normalization, padding and length masks;
- `training`: `train` and the four artifacts it writes;
- `demo_data`: a synthetic dataset for trying the pipeline.

Importing any of them is cheap: TensorFlow/Keras are imported inside the
functions that build, train or run a model, and scikit-learn inside the split.
"""
