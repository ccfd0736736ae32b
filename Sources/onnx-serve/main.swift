import Kernels

print("onnx-serve: OpenBLAS core \(BLAS.coreName)")
