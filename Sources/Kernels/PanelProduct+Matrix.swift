extension PanelProduct {
    // Shapes: b [n × k] (row stride ldb) when `transposed`, else [k × n]; packed [packedCount(rows: n, depth: k)].
    /// Packs a Gemm's B, scaled by `scale`, for `multiply`: as `pack` with one group, from B's
    /// rows (`transposed`: Gemm's transB) or its columns.
    public static func packMatrix(_ b: UnsafePointer<Float>, ldb: Int, columns n: Int, depth k: Int, transposed: Bool, scale: Float,
                                  into packed: UnsafeMutablePointer<Float>) {
        for u in 0..<blockCount(n) {
            let panel = packed + u * k * panelWidth
            for i in 0..<panelWidth {
                let column = u * panelWidth + i
                guard column < n else {
                    for p in 0..<k { panel[p * panelWidth + i] = 0 }
                    continue
                }
                if transposed {
                    let source = b + column * ldb
                    for p in 0..<k { panel[p * panelWidth + i] = scale * source[p] }
                } else {
                    for p in 0..<k { panel[p * panelWidth + i] = scale * b[p * ldb + column] }
                }
            }
        }
    }
}
