import onnx
import pytest
from onnx import TensorProto, helper

from sapnet_export.errors import InputError
from sapnet_export.export.onnx_export import to_onnx_proto
from sapnet_export.model.onnx_meta import check_io, pooling_nodes


def _graph(inputs, outputs):
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1])  # noqa: E731
    nodes = [helper.make_node("Sum", list(inputs), list(outputs))]
    return helper.make_model(helper.make_graph(nodes, "g", [value(i) for i in inputs],
                                               [value(o) for o in outputs]))


def test_check_io_tells_plain_from_shared_pooling_exports():
    assert check_io(_graph(["rainy"], ["derained"]), "plain.onnx") is False
    assert check_io(_graph(["rainy", "pool_weights"], ["derained"]), "shared.onnx") is True
    wrong = ((["x"], ["derained"]), (["rainy"], ["y"]), (["pool_weights", "rainy"], ["derained"]))
    for inputs, outputs in wrong:
        with pytest.raises(InputError, match=r"odd.onnx: expected input 'rainy' \(and 'pool_weights'"):
            check_io(_graph(inputs, outputs), "odd.onnx")


def test_pooling_nodes_are_the_weighted_sums_of_every_cra_layer(tiny_model):
    assert pooling_nodes(to_onnx_proto(tiny_model, 2, 17, None)) == []
    shared = to_onnx_proto(tiny_model, 1, 17, None, shared_pooling=True)
    names = pooling_nodes(shared)
    kinds = {node.name: node.op_type for node in shared.graph.node}
    assert len(names) == 2 * 10  # a Mul and a ReduceSum for each of the 10 CRA layers of a stage
    assert sorted({kinds[n] for n in names}) == ["Mul", "ReduceSum"]
    assert all(n.startswith("/model/res_conv") for n in names)  # module scopes kept (quantize groups)
    onnx.checker.check_model(shared, full_check=True)
