import HTTP

/// Input: header lines (`Name: value`), an empty line, then the body as it arrives on the wire,
/// handed to the reader in chunks of 1, 13, 512 and 4096 bytes in turn. Bodies may inflate to at
/// most 64 KiB (1 MiB made every gzip bomb the fuzzer finds cost a millisecond: 2,900 execs/s),
/// charged to a 48 KiB memory budget, so both the limit and the budget refusal are reached. The
/// budget must be whole again once the reader's reservation is released, on every path.
func fuzzBodyReader(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let newline = UInt8(ascii: "\n")
    var headers = HTTPHeaders()
    var position = 0
    while position < input.count {
        let end = input[position...].firstIndex(of: newline) ?? input.count
        var line = String(decoding: input[position..<end], as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        position = end + 1
        if line.isEmpty { break }
        if let colon = line.firstIndex(of: ":") {
            headers.append(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].drop(while: { $0 == " " })))
        }
    }
    let budget = MemoryBudget(limit: 48 << 10)
    defer {
        if budget.bytesInUse != 0 { fatalError("body reader left \(budget.bytesInUse) bytes reserved") }
    }
    guard let reader = try? BodyReader(headers: headers, limit: 64 << 10, budget: budget) else { return }
    defer { reader.reservation?.release() }
    let chunkSizes = [1, 13, 512, 4096]
    var chunk = 0
    while position < input.count {
        let end = min(input.count, position + chunkSizes[chunk % chunkSizes.count])
        guard (try? reader.append(UnsafeRawBufferPointer(rebasing: input[position..<end]))) != nil else { return }
        position = end
        chunk += 1
    }
    if let body = try? reader.finish(), body.count > 64 << 10 {
        fatalError("body of \(body.count) bytes passed a 64 KiB limit")
    }
}
