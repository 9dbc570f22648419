"""Export a model for deployment without affectkit's Python stack: ONNX or TorchScript.

The exported graph is the image tower, the view fusion and the scoring against the class
embeddings, baked in as constants. Its input is ``views`` ``[B, V, C, H, W]``, float32 in
[0, 1], exactly what the renderer makes for one scan (:meth:`RenderedViews.stack`); its
output is ``logits`` ``[B, K]`` (softmax them for probabilities). A JSON file beside it says
how to make the input (renderer, views, size, maps) and names the K classes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from affectkit.errors import AffectkitError
from affectkit.model.affectvlm import AffectVLM

ExportFormat = Literal["onnx", "torchscript"]
SUFFIXES: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}


class ViewClassifier(nn.Module):
    """Rendered views of one frame -> class logits, with the class embeddings fixed."""

    def __init__(self, model: AffectVLM, class_embeddings: Tensor) -> None:
        super().__init__()
        self.model = model.eval()
        self.register_buffer("class_embeddings", class_embeddings.detach().clone())

    def forward(self, views: Tensor) -> Tensor:
        _, logits = self.model.classify(views.unsqueeze(1), self.class_embeddings)
        return logits


def example_views(batch: int, num_views: int, channels: int, size: int) -> Tensor:
    """A random input of the exported graph's shape (for tracing and parity checks)."""
    return torch.rand(batch, num_views, channels, size, size, generator=torch.Generator().manual_seed(0))


def export_model_file(model_dir: str | Path, out: str | Path, fmt: ExportFormat = "onnx") -> Path:
    """Write the model of ``model_dir`` as ONNX (opset 18, dynamic batch) or TorchScript to
    ``out``, and ``<out>.json`` with what making its input needs; the written path."""
    from affectkit.serve.inference import Predictor

    predictor = Predictor.from_checkpoint(model_dir)
    inputs, meta = predictor.inputs, predictor.meta
    if inputs.frames != 1:
        raise AffectkitError(f"{model_dir}: exporting models of several frames ({inputs.frames}) is not supported; the exported graph takes one frame's views")
    channels = meta.in_channels
    module = ViewClassifier(predictor.model, predictor.classes.class_embeddings).eval()
    example = example_views(2, meta.num_views, channels, inputs.size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter notes about constants: expected here
        if fmt == "onnx":
            _export_onnx(module, example, out)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(module, example), str(out))
        else:
            raise AffectkitError(f"export format {fmt!r}: choose onnx or torchscript")
    sidecar = {
        "format": fmt,
        "input": {"name": "views", "shape": ["batch", meta.num_views, channels, inputs.size, inputs.size], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "logits", "shape": ["batch", len(predictor.labels)]},
        "labels": predictor.labels,
        "render": inputs.model_dump(mode="json"),
        "source": str(model_dir),
    }
    Path(f"{out}.json").write_text(json.dumps(sidecar, indent=1))
    return out


def _export_onnx(module: nn.Module, example: Tensor, out: Path) -> None:
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so before tracing)
    except ImportError:
        raise AffectkitError("ONNX export needs the packages onnx and onnxscript: pip install 'affectkit[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        module, (example,), input_names=["views"], output_names=["logits"], dynamic_shapes={"views": {0: batch}}, dynamo=True, opset_version=18, verbose=False
    )
    program.save(str(out))
