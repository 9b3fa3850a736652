"""Models as chains of assets: training set -> model -> evaluation -> ONNX bundle -> promotion.

`lifecycle/` is shared by every model; each model family (`demand/`, `fraud/`) keeps its
training-set construction, training, evaluation and export in its own folder.
"""
