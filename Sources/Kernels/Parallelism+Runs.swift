extension Parallelism {
    /// Calls `body(row, columns)` for every row in `0..<rows` and a column range of it, covering
    /// all `rows × columns` positions once, spread over the threads in chunks of at least
    /// `grain` positions. A few long rows are split by columns so they still run in parallel.
    @inlinable
    func forEachRun(rows: Int, columns: Int, grain: Int, _ body: (Int, Range<Int>) -> Void) {
        forEachChunk(rows * columns, minimumChunk: max(1, grain)) { chunk in
            var position = chunk.lowerBound
            while position < chunk.upperBound {
                let row = position / columns, start = position % columns
                let end = min(columns, start + chunk.upperBound - position)
                body(row, start..<end)
                position += end - start
            }
        }
    }
}
