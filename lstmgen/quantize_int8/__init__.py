"""Full-integer (int8) quantization with TensorFlow Lite's scheme, and its reference.

`reference.forward_int8` runs an `lstmgen.ir_int8.Int8Model` in numpy, bit for bit as the
int8-full C kernel and TensorFlow Lite Micro do; `fixedpoint` holds its primitives.
"""
