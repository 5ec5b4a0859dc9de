"""The v9 model family: WAV2VEC features -> BiLSTM + masked self-attention -> emotion classes.

One job per module:

- `architecture`: hyper-parameters (defaults, validation) and `build_model`;
- `model_config`: a Keras model config (plain JSON) read as family hyper-parameters;
- `h5config`: an .h5 file read as data (config, weight shapes) and `check_compatible`;
- `data`: a directory of `.npz` utterances, checked, plus `resolve_data_dir`;
- `preprocessing`: split, train-only normalization, padding and length masks;
- `training`: `train` and the four artifacts it writes;
- `inference`: `load_weights_into` (weights only, never a stored config) and `predict`;
- `demo_data`: a synthetic dataset for trying the pipeline.

Importing any of them is cheap: TensorFlow/Keras are imported inside the
functions that build, train or run a model, and scikit-learn inside the split.
"""
