"""Model training on real LendingClub loans, ONNX export and the model registry's write side."""
