"""Converters from SBIF files to other frameworks (optional extras: each imports its framework lazily).

    sbif.convert.onnx.to_onnx(path)      -> onnx.ModelProto   (pip install onnx; run with onnxruntime)
    sbif.convert.torch.to_module(path)   -> torch.nn.Module   (pip install torch; scriptable)
"""
