"""Model runtime: a model folder loaded into ONNX Runtime with its tokenizer and metadata."""

from shared.runtime.model_folder import ModelInfo, open_model_folder, read_model_info, write_model_info
from shared.runtime.onnx_classifier import OnnxTextClassifier, Prediction
from shared.runtime.onnx_token_classifier import Entity, OnnxEntityRecognizer

__all__ = ["Entity", "ModelInfo", "OnnxEntityRecognizer", "OnnxTextClassifier", "Prediction", "open_model_folder", "read_model_info", "write_model_info"]
