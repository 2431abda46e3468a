"""The float copy of a dynamically quantized (int8) ONNX detector.

Dynamic int8 ONNX models (onnxruntime's `quantize_dynamic`: DynamicQuantizeLinear + ConvInteger)
run on onnxruntime's slow CPU kernels for ConvInteger; the same network with its int8 weights
expanded to float32 (`dequantize_dynamic_int8`, cached by `float_copy`) runs on its float
convolutions. The float copy computes the int8 weights exactly and skips only the activation
rounding, so its detections are the int8 model's up to that rounding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from codec import paths


def is_dynamic_int8(path: Path | str) -> bool:
    """Whether an ONNX file holds ConvInteger nodes (onnxruntime dynamic quantization)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type == "ConvInteger" for node in model.graph.node)


def dequantize_dynamic_int8(src: Path | str, dst: Path | str) -> Path:
    """Rewrite every DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul(scale) chain of a dynamically
    quantized model as one float Conv whose weights are the int8 weights times their scale; metadata
    (ultralytics' class names, stride, task) is kept. Raises ValueError on any other pattern."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    arrays = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only(nodes: list, op: str, where: str):
        if len(nodes) != 1 or nodes[0].op_type != op:
            raise ValueError(f"{src}: {where} is not followed by a single {op}; not a dynamic int8 Conv pattern")
        return nodes[0]

    replaced, new_arrays = set(), []
    for conv_int in [n for n in graph.node if n.op_type == "ConvInteger"]:
        x_q, w_q, _, w_zero = conv_int.input
        quantize = producer.get(x_q)
        if quantize is None or quantize.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"{src}: {conv_int.name} does not read a DynamicQuantizeLinear output")
        cast = only(consumers.get(conv_int.output[0], []), "Cast", conv_int.name)
        rescale = only(consumers.get(cast.output[0], []), "Mul", cast.name)
        scales = producer.get(next(i for i in rescale.input if i != cast.output[0]))
        w_scale = [i for i in (scales.input if scales is not None and scales.op_type == "Mul" else []) if i in arrays]
        if len(w_scale) != 1:
            raise ValueError(f"{src}: cannot find the weight scale of {conv_int.name}")
        weight = numpy_helper.to_array(arrays[w_q]).astype(np.float32) - numpy_helper.to_array(arrays[w_zero]).astype(np.float32)
        scale = numpy_helper.to_array(arrays[w_scale[0]]).astype(np.float32)
        weight *= scale.reshape(-1, 1, 1, 1) if scale.ndim else scale
        new_arrays.append(numpy_helper.from_array(weight, w_q + "_float"))
        attrs = {a.name: helper.get_attribute_value(a) for a in conv_int.attribute}
        graph.node.insert(list(graph.node).index(conv_int),
                          helper.make_node("Conv", [quantize.input[0], w_q + "_float"], [rescale.output[0]],
                                           name=conv_int.name + "_float", **attrs))
        replaced |= {id(conv_int), id(cast), id(rescale), id(scales)}
    if not replaced:
        raise ValueError(f"{src} has no ConvInteger nodes: nothing to dequantize")
    kept = [n for n in graph.node if id(n) not in replaced]
    read = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    kept = [n for n in kept if not (n.op_type == "DynamicQuantizeLinear" and not any(o in read for o in n.output))]
    del graph.node[:]
    graph.node.extend(kept)
    read = {i for n in kept for i in n.input}
    initializers = [t for t in list(graph.initializer) + new_arrays if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    dst = Path(dst)
    with paths.replacing(dst) as tmp:  # concurrent first uses each write their own
        onnx.save(model, str(tmp))
    return dst


def float_copy(src: Path | str) -> Path:
    """The cached float copy of a dynamic int8 ONNX detector (made on first use, keyed by its hash)."""
    src = Path(src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    dst = paths.cache_dir() / "detectors" / f"{src.stem}.float-{digest}.onnx"
    return dst if dst.is_file() else dequantize_dynamic_int8(src, dst)
